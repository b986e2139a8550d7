"""`gateway models seed SOURCE DEST [--gpu]`: fill a shared model repository from a built one.

What a deployment runs before Triton starts (an init container, a one-shot Compose
service): every file of SOURCE that DEST lacks is copied (to a temporary name, then
renamed, so a Triton or a second seeder never sees half a file); nothing DEST already has
is touched, so versions published through the gateway and the `version_policy` it wrote
survive every restart.

With --gpu, each model config copied is made for a GPU: the instance groups of ONNX models
become KIND_GPU, and ONNX Runtime runs them with its TensorRT execution accelerator in FP16
(Triton builds the TensorRT engines when it loads the model). Python-backend models (the
tokenizer) and ensembles stay as they are. The config is rewritten from Triton's
`ModelConfig` protobuf, so the copy loses the source file's comments.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

TENSORRT_WORKSPACE_BYTES = 1 << 30
SKIPPED = frozenset({"__pycache__"})


def seed(source: Path, destination: Path, gpu: bool = False) -> list[Path]:
    """Copy what `destination` lacks; the paths copied, relative to it."""
    copied = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_dir() or SKIPPED & set(relative.parts) or relative.name.startswith("."):
            continue
        target = destination / relative
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.seeding")
        if gpu and relative.name == "config.pbtxt":
            partial.write_text(for_gpu(path.read_text()))
        else:
            shutil.copyfile(path, partial)
        partial.replace(target)
        copied.append(relative)
    return copied


def for_gpu(config_text: str) -> str:
    """A model config made for a GPU (see the module's docstring)."""
    config = model_config_pb2.ModelConfig()
    text_format.Parse(config_text, config)
    if config.backend != "onnxruntime" and config.platform != "onnxruntime_onnx":
        return config_text
    for group in config.instance_group:
        group.kind = model_config_pb2.ModelInstanceGroup.KIND_GPU
    accelerators = config.optimization.execution_accelerators
    if not any(a.name == "tensorrt" for a in accelerators.gpu_execution_accelerator):
        tensorrt = accelerators.gpu_execution_accelerator.add(name="tensorrt")
        tensorrt.parameters["precision_mode"] = "FP16"
        tensorrt.parameters["max_workspace_size_bytes"] = str(TENSORRT_WORKSPACE_BYTES)
    return text_format.MessageToString(config)
