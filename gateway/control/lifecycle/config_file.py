"""A model's `config.pbtxt`, read and written through Triton's own `ModelConfig` protobuf.

The gateway owns which versions Triton loads: it writes them into the config's
`version_policy` as `specific` versions, so they survive a restart of Triton or the
gateway. That is the only part of the operator's file it changes: the top-level
`version_policy` field is replaced in the text (or appended when there is none), so
comments, field order and layout stay as written. Writes are atomic (temporary file, then
rename).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from google.protobuf import text_format
from onnx import TensorProto
from tritonclient.grpc import model_config_pb2

from gateway.control.lifecycle.errors import LifecycleError

ModelConfig = model_config_pb2.ModelConfig


def read_config(model_dir: Path) -> model_config_pb2.ModelConfig:
    config = ModelConfig()
    text_format.Parse((model_dir / "config.pbtxt").read_text(), config)
    return config


def config_text(model_dir: Path) -> str:
    return (model_dir / "config.pbtxt").read_text()


def write_config_text(model_dir: Path, text: str) -> None:
    target = model_dir / "config.pbtxt"
    tmp = target.with_suffix(".pbtxt.tmp")
    tmp.write_text(text)
    tmp.replace(target)


def with_served_versions(text: str, versions: list[int]) -> str:
    """`text` with its top-level `version_policy` set to these versions, nothing else
    changed; LifecycleError if the result would not be the same config otherwise."""
    policy = f"version_policy: {{ specific: {{ versions: {sorted(set(versions))} }} }}"
    span = _top_level_field(text, "version_policy")
    if span is None:
        edited = text.rstrip("\n") + "\n# Served versions, kept by the gateway's model lifecycle.\n"
        edited += policy + "\n"
    else:
        edited = text[: span[0]] + policy + text[span[1] :]
    expected, actual = ModelConfig(), ModelConfig()
    try:
        text_format.Parse(text, expected)
        text_format.Parse(edited, actual)
    except text_format.ParseError as exc:
        raise LifecycleError(f"config.pbtxt does not parse: {exc}") from exc
    if actual != with_versions(expected, versions):
        raise LifecycleError("config.pbtxt could not be edited in place; check its syntax")
    return edited


def _top_level_field(text: str, name: str) -> tuple[int, int] | None:
    """Where the top-level message field `name { ... }` (or `name: { ... }`) starts and ends."""
    depth = 0
    start: int | None = None
    for index, char in _significant(text):
        if char in "{<":
            depth += 1
        elif char in "}>":
            depth -= 1
            if depth == 0 and start is not None:
                return start, index + 1
        elif depth == 0 and start is None and _word_at(text, index, name):
            start = index
    return None


def _word_at(text: str, index: int, word: str) -> bool:
    end = index + len(word)
    before = text[index - 1] if index else " "
    after = text[end] if end < len(text) else " "
    return (
        text.startswith(word, index)
        and not (before.isalnum() or before == "_")
        and not (after.isalnum() or after == "_")
    )


def _significant(text: str) -> Iterator[tuple[int, str]]:
    """Characters outside comments and string literals, with their index."""
    index = 0
    while index < len(text):
        char = text[index]
        if char == "#":
            newline = text.find("\n", index)
            index = len(text) if newline < 0 else newline
            continue
        if char in "\"'":
            index += 1
            while index < len(text) and text[index] != char:
                index += 2 if text[index] == "\\" else 1
        else:
            yield index, char
        index += 1


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


def v2_datatype(config_type: str) -> str:
    """The KServe v2 name of a config data type: `TYPE_FP32` -> `FP32`, `TYPE_STRING` ->
    `BYTES` (what clients send and read)."""
    name = config_type.removeprefix("TYPE_")
    return "BYTES" if name == "STRING" else name


def described_type(config_type: str) -> str:
    """A config data type as errors name it: `BYTES (TYPE_STRING)`."""
    return f"{v2_datatype(config_type)} ({config_type})"


# ONNX element type -> the config's data type
ONNX_TYPES: dict[int, str] = {
    TensorProto.BOOL: "TYPE_BOOL",
    TensorProto.UINT8: "TYPE_UINT8",
    TensorProto.UINT16: "TYPE_UINT16",
    TensorProto.UINT32: "TYPE_UINT32",
    TensorProto.UINT64: "TYPE_UINT64",
    TensorProto.INT8: "TYPE_INT8",
    TensorProto.INT16: "TYPE_INT16",
    TensorProto.INT32: "TYPE_INT32",
    TensorProto.INT64: "TYPE_INT64",
    TensorProto.FLOAT16: "TYPE_FP16",
    TensorProto.FLOAT: "TYPE_FP32",
    TensorProto.DOUBLE: "TYPE_FP64",
    TensorProto.STRING: "TYPE_STRING",
    TensorProto.BFLOAT16: "TYPE_BF16",
}
