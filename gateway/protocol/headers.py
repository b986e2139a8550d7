"""Request headers as every front hands them to the pipeline: (name, value) byte pairs with
lower-case names, as ASGI gives them (gRPC metadata is translated to the same form)."""

from __future__ import annotations

from collections.abc import Iterable

Headers = Iterable[tuple[bytes, bytes]]


def header(headers: Headers, name: bytes) -> bytes | None:
    """The first value of header `name` (lower-case), or None."""
    for key, value in headers:
        if key == name:
            return value
    return None
