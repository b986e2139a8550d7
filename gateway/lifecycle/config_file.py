"""A model's `config.pbtxt`, read and written through Triton's own `ModelConfig` protobuf.

The gateway owns which versions Triton loads: it writes them into the config's
`version_policy` as `specific` versions, so they survive a restart of Triton or the
gateway. Writes are atomic (temporary file, then rename).
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

ModelConfig = model_config_pb2.ModelConfig


def read_config(model_dir: Path) -> model_config_pb2.ModelConfig:
    config = ModelConfig()
    text_format.Parse((model_dir / "config.pbtxt").read_text(), config)
    return config


def write_config(model_dir: Path, config: model_config_pb2.ModelConfig) -> None:
    target = model_dir / "config.pbtxt"
    tmp = target.with_suffix(".pbtxt.tmp")
    tmp.write_text(
        "# Written by the gateway's model lifecycle (version_policy lists the served versions).\n"
        + text_format.MessageToString(config)
    )
    tmp.replace(target)


def versions_on_disk(model_dir: Path) -> list[int]:
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def policy_versions(config: model_config_pb2.ModelConfig, on_disk: list[int]) -> list[int]:
    """The versions the config's policy selects among those on disk."""
    policy = config.version_policy
    kind = policy.WhichOneof("policy_choice")
    if kind == "specific":
        return sorted(v for v in policy.specific.versions if v in on_disk)
    if kind == "all":
        return list(on_disk)
    count = policy.latest.num_versions if kind == "latest" else 1
    return sorted(on_disk)[-count:]


def with_versions(
    config: model_config_pb2.ModelConfig, versions: list[int]
) -> model_config_pb2.ModelConfig:
    updated = ModelConfig()
    updated.CopyFrom(config)
    updated.version_policy.Clear()
    updated.version_policy.specific.versions.extend(sorted(set(versions)))
    return updated


def datatype_name(value: int) -> str:
    """`TYPE_FP32` and so on."""
    return str(model_config_pb2.DataType.Name(value))
