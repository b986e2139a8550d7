"""Paths of Triton's HTTP API for a model (and version), each segment escaped."""

from __future__ import annotations

from urllib.parse import quote

from gateway.protocol.names import check_model_path


def model_path(model: str, version: str) -> str:
    check_model_path(model, version)  # nothing Triton cannot have reaches it
    path = f"/v2/models/{segment(model)}"
    return f"{path}/versions/{segment(version)}" if version else path


def segment(value: str) -> str:
    return quote(value, safe="")
