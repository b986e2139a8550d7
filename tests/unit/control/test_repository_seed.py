"""Seeding a model repository: what is missing is copied, what changed in the source and
not since in the destination is updated, what the gateway changed there is kept."""

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
    (root / "ensemble" / "1").mkdir(parents=True)  # an ensemble's version: an empty folder
    (root / "ensemble" / "config.pbtxt").write_text('name: "ensemble"\nplatform: "ensemble"\n')
    return root


def test_seeding_copies_updates_and_keeps_what_the_gateway_changed(tmp_path: Path) -> None:
    source = make_repository(tmp_path / "source")
    shared = tmp_path / "shared"
    first = seed(source, shared)
    assert (first.copied, first.updated, first.kept) == (
        [Path("ensemble/config.pbtxt"), Path("m/1/model.onnx"), Path("m/config.pbtxt")],
        [],
        [],
    )
    assert (shared / "m" / "1" / "model.onnx").read_bytes() == b"v1"
    assert (shared / "ensemble" / "1").is_dir()
    assert not (shared / "m" / "1" / "__pycache__").exists()
    # What the gateway changed since (a published version, its version_policy) stays.
    (shared / "m" / "config.pbtxt").write_text(ONNX_CONFIG + "# edited\n")
    (shared / "m" / "2").mkdir()
    (shared / "m" / "2" / "model.onnx").write_bytes(b"v2")
    # A new build: version 1 retrained (a new file, as the build writes them), config changed.
    (source / "m" / "1" / "model.onnx").unlink()
    (source / "m" / "1" / "model.onnx").write_bytes(b"rebuilt")
    (source / "m" / "config.pbtxt").write_text(ONNX_CONFIG + "# new in the source\n")
    again = seed(source, shared)
    assert (again.copied, again.updated) == ([], [Path("m/1/model.onnx")])
    assert again.kept == [Path("m/config.pbtxt")]
    assert "1 kept as changed since (m/config.pbtxt)" in again.summary()
    assert (shared / "m" / "1" / "model.onnx").read_bytes() == b"rebuilt"
    assert (shared / "m" / "config.pbtxt").read_text().endswith("# edited\n")
    assert (shared / "m" / "2" / "model.onnx").read_bytes() == b"v2"
    assert (source / "m" / "1" / "model.onnx").read_bytes() == b"rebuilt"  # the source intact
    assert not list(shared.rglob(".*seeding"))
    nothing = seed(source, shared)
    assert (nothing.copied, nothing.updated) == ([], [])


def test_a_destination_seeded_before_the_manifest_is_adopted_where_it_matches(
    tmp_path: Path,
) -> None:
    source = make_repository(tmp_path / "source")
    shared = tmp_path / "shared"
    seed(source, shared)
    (shared / ".seeded.json").unlink()  # seeded by an older seeder
    (source / "m" / "1" / "model.onnx").unlink()
    (source / "m" / "1" / "model.onnx").write_bytes(b"rebuilt")
    again = seed(source, shared)
    assert again.kept == [Path("m/1/model.onnx")]  # not known to be ours: left alone
    assert seed(source, shared).kept == [Path("m/1/model.onnx")]


def parsed(text: str) -> model_config_pb2.ModelConfig:
    config = model_config_pb2.ModelConfig()
    text_format.Parse(text, config)
    return config


def test_gpu_configs_run_onnx_models_on_the_gpu_with_tensorrt_fp16() -> None:
    config = parsed(for_gpu(ONNX_CONFIG))
    assert [g.kind for g in config.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_GPU]
    (tensorrt,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert tensorrt.name == "tensorrt" and tensorrt.parameters["precision_mode"] == "FP16"
    assert tensorrt.parameters["trt_engine_cache_enable"] == "1"
    assert tensorrt.parameters["trt_engine_cache_path"] == f"/tensorrt-cache/{config.name}"
    assert config.max_batch_size == 64 and config.dynamic_batching.max_queue_delay_microseconds
    assert for_gpu(for_gpu(ONNX_CONFIG)) == for_gpu(ONNX_CONFIG)
    assert for_gpu(PYTHON_CONFIG) == PYTHON_CONFIG  # the tokenizer stays on the CPU
