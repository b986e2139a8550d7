"""The v2 tensor data types and their numpy equivalents."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

# Fixed-size types: v2 name -> little-endian numpy dtype.
NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
BYTES = "BYTES"
BF16 = "BF16"  # 2 bytes per element; numpy has no such type, so binary transport only

ELEMENT_SIZES: dict[str, int] = {name: dtype.itemsize for name, dtype in NUMPY_DTYPES.items()}
ELEMENT_SIZES[BF16] = 2

DATATYPES = frozenset([*NUMPY_DTYPES, BYTES, BF16])

_LENGTH = struct.Struct("<I")


def element_count(shape: tuple[int, ...]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def encode_bytes_elements(elements: list[bytes]) -> bytes:
    """BYTES elements in Triton's wire form: a 4-byte little-endian length before each."""
    return b"".join(_LENGTH.pack(len(element)) + element for element in elements)


def decode_bytes_elements(data: bytes | memoryview) -> list[bytes]:
    """The inverse of `encode_bytes_elements`; ValueError when the framing is broken."""
    view = memoryview(data)
    elements = []
    offset = 0
    while offset < len(view):
        if offset + 4 > len(view):
            raise ValueError("truncated element length")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + length > len(view):
            raise ValueError("element runs past the end of the data")
        elements.append(bytes(view[offset : offset + length]))
        offset += length
    return elements
