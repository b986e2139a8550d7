"""`gateway models seed SOURCE DEST [--gpu]`: fill a model repository from a built one, and
keep it up to date with it.

What a deployment runs before Triton starts (an init container, a one-shot Compose
service), and what `gateway up` does to serve a working copy of the project's repository
(so publishing never edits the source folder). `DEST/.seeded.json` records the SHA-256 of
every file seeding wrote. Each file of SOURCE is then:

    missing in DEST                                   copied                 (copied)
    in DEST as seeding wrote it, changed in SOURCE    copied again           (updated)
    in DEST, changed there since (a version policy    left as it is          (kept)
      the gateway wrote) or never seeded
    in DEST as in SOURCE                              nothing to do

Folders are made as in SOURCE (an ensemble's version folder holds no file, but Triton loads
no version without it). Nothing that is only in DEST is touched, so versions published
through the gateway, and the config changes that serve them, survive every restart and
every new models image.
Files are written to a temporary name, then renamed, so a Triton or a second seeder never
sees half a file; version folders' files are hard links where DEST is on the same file
system (they are never changed in place: a new version is a new folder).

With --gpu, each model config copied is made for a GPU: the instance groups of ONNX models
become KIND_GPU, and ONNX Runtime runs them with its TensorRT execution accelerator in FP16
(Triton builds the TensorRT engines when it loads the model, and keeps them in
TENSORRT_CACHE, the gpu overlay's volume, for the next load). Python-backend models (the
tokenizer) and ensembles stay as they are. The config is rewritten from Triton's
`ModelConfig` protobuf, so the copy loses the source file's comments.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

TENSORRT_WORKSPACE_BYTES = 1 << 30
TENSORRT_CACHE = "/tensorrt-cache"  # the gpu overlay's volume for built engines
SKIPPED = frozenset({"__pycache__"})
MANIFEST = ".seeded.json"


@dataclass
class Seeded:
    """What one seeding did, by path relative to the repository."""

    copied: list[Path] = field(default_factory=list)
    updated: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)  # changed in DEST since, or not seeded

    def summary(self) -> str:
        kept = (
            f", {len(self.kept)} kept as changed since ({_listed(self.kept)})" if self.kept else ""
        )
        return f"{len(self.copied)} copied, {len(self.updated)} updated{kept}"


def seed(source: Path, destination: Path, gpu: bool = False) -> Seeded:
    """Bring `destination` up to date with `source` (see the module's docstring)."""
    destination.mkdir(parents=True, exist_ok=True)
    manifest_path = destination / MANIFEST
    manifest = _manifest(manifest_path)
    done = Seeded()
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if SKIPPED & set(relative.parts) or relative.name.startswith("."):
            continue
        if path.is_dir():  # folders too: an ensemble's version folder is empty, yet needed
            (destination / relative).mkdir(parents=True, exist_ok=True)
            continue
        key = relative.as_posix()
        content = for_gpu(path.read_text()) if gpu and relative.name == "config.pbtxt" else None
        wanted = _digest_of(content.encode() if content is not None else path)
        target = destination / relative
        existed = target.exists()
        if existed:
            present = _digest_of(target)
            if present == wanted:
                manifest[key] = wanted  # up to date (or the same as if seeded)
                continue
            if manifest.get(key) != present:  # changed in DEST since, or not seeded
                done.kept.append(relative)
                continue
        _write(path, target, content, linked=_in_a_version(relative))
        (done.updated if existed else done.copied).append(relative)
        manifest[key] = wanted
    partial = manifest_path.with_name(f"{MANIFEST}.seeding")
    partial.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    partial.replace(manifest_path)
    return done


def _write(source: Path, target: Path, content: str | None, linked: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.seeding")
    partial.unlink(missing_ok=True)
    if content is not None:
        partial.write_text(content)
    elif linked:
        try:
            os.link(source, partial)
        except OSError:  # another file system
            shutil.copyfile(source, partial)
    else:
        shutil.copyfile(source, partial)
    partial.replace(target)


def _in_a_version(relative: Path) -> bool:
    return len(relative.parts) > 2 and relative.parts[1].isdigit()


def _manifest(path: Path) -> dict[str, str]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in document.items()} if isinstance(document, dict) else {}


def _digest_of(source: Path | bytes) -> str:
    digest = hashlib.sha256()
    if isinstance(source, bytes):
        digest.update(source)
        return digest.hexdigest()
    with source.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _listed(paths: list[Path]) -> str:
    shown = ", ".join(str(p) for p in paths[:3])
    return shown + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


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
        # Engines built once, not at every start, scale-up and publish.
        tensorrt.parameters["trt_engine_cache_enable"] = "1"
        tensorrt.parameters["trt_engine_cache_path"] = f"{TENSORRT_CACHE}/{config.name}"
    return text_format.MessageToString(config)
