"""Limits on the model names and versions a request may carry, checked before any backend.

A model is a folder of Triton's repository, so no model's name is longer than a file name
may be (255 bytes); Triton's versions are positive 64-bit integers. A path outside these
limits gets a 400 naming the problem at once: it never reaches Triton (whose HTTP server
drops very long URLs, which used to look like an outage) and never reaches a metric label.
"""

from __future__ import annotations

from gateway.errors import BadRequest

MAX_MODEL_NAME_BYTES = 255
MAX_VERSION_DIGITS = 19


def check_model_path(model: str, version: str = "") -> None:
    size = len(model.encode())
    if size > MAX_MODEL_NAME_BYTES:
        raise BadRequest(
            f"a model name has at most {MAX_MODEL_NAME_BYTES} bytes; this one has {size}"
        )
    positive = version.isascii() and version.isdigit() and version.strip("0") != ""
    if version and not (positive and len(version) <= MAX_VERSION_DIGITS):
        shown = version if len(version) <= 40 else version[:40] + "..."
        raise BadRequest(f"a model version is a positive integer; '{shown}' is not")
