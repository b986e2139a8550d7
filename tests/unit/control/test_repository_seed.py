"""Seeding a shared model repository: what is missing is copied, nothing present changes."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from gateway.control.repository_seed import for_gpu, seed
from tests.support.data import ROOT

ONNX_CONFIG = (ROOT / "model_repository" / "tabular_classifier" / "config.pbtxt").read_text()
PYTHON_CONFIG = (ROOT / "model_repository" / "text_tokenizer" / "config.pbtxt").read_text()


def make_repository(root: Path) -> Path:
    (root / "m" / "1").mkdir(parents=True)
    (root / "m" / "config.pbtxt").write_text(ONNX_CONFIG)
    (root / "m" / "1" / "model.onnx").write_bytes(b"v1")
    (root / "m" / "1" / "__pycache__").mkdir()
    (root / "m" / "1" / "__pycache__" / "x.pyc").write_bytes(b"")
    return root


def test_seeding_copies_only_what_is_missing(tmp_path: Path) -> None:
    source = make_repository(tmp_path / "source")
    shared = tmp_path / "shared"
    assert seed(source, shared) == [Path("m/1/model.onnx"), Path("m/config.pbtxt")]
    assert (shared / "m" / "1" / "model.onnx").read_bytes() == b"v1"
    assert not (shared / "m" / "1" / "__pycache__").exists()
    # What the gateway changed since (a published version, its version_policy) stays.
    (shared / "m" / "config.pbtxt").write_text(ONNX_CONFIG + "# edited\n")
    (shared / "m" / "2").mkdir()
    (shared / "m" / "2" / "model.onnx").write_bytes(b"v2")
    (source / "m" / "1" / "model.onnx").write_bytes(b"rebuilt")
    assert seed(source, shared) == []
    assert (shared / "m" / "config.pbtxt").read_text().endswith("# edited\n")
    assert (shared / "m" / "1" / "model.onnx").read_bytes() == b"v1"
    assert not list(shared.rglob(".*seeding"))


def parsed(text: str) -> model_config_pb2.ModelConfig:
    config = model_config_pb2.ModelConfig()
    text_format.Parse(text, config)
    return config


def test_gpu_configs_run_onnx_models_on_the_gpu_with_tensorrt_fp16() -> None:
    config = parsed(for_gpu(ONNX_CONFIG))
    assert [g.kind for g in config.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_GPU]
    (tensorrt,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert tensorrt.name == "tensorrt" and tensorrt.parameters["precision_mode"] == "FP16"
    assert config.max_batch_size == 64 and config.dynamic_batching.max_queue_delay_microseconds
    assert for_gpu(for_gpu(ONNX_CONFIG)) == for_gpu(ONNX_CONFIG)
    assert for_gpu(PYTHON_CONFIG) == PYTHON_CONFIG  # the tokenizer stays on the CPU
