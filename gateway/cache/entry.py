"""Cache values: the outputs in a compact binary form, bound to their key and signed.

    magic "GWC2" | key digest (32) | version | Triton seconds (f64) | output count
    per output: name | datatype | shape | raw data
    HMAC-SHA256(server secret, everything above) (32)

Strings are u16-length-prefixed, shapes u8 rank + i64 dims, data u64-length-prefixed.
Entries of the first format ("GWC1", without the Triton seconds) are still read.
`verify` refuses (raises `InvalidEntry`) anything whose signature, key digest or framing is
wrong: a forged, corrupted or misplaced entry is a miss, never an answer.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from gateway.protocol.types import InferResult, Tensor

MAGIC = b"GWC2"
FIRST_MAGIC = b"GWC1"
_U16 = struct.Struct("<H")
_F64 = struct.Struct("<d")
_U64 = struct.Struct("<Q")
SIGNATURE_SIZE = 32


class InvalidEntry(ValueError):
    """A cached value failed verification."""


class EntryCodec:
    """Packs results into signed entries and verifies them on the way back."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def pack(self, key: bytes, result: InferResult) -> bytes:
        parts = [MAGIC, key, _text(result.version), _F64.pack(result.triton_s)]
        parts.append(_U16.pack(len(result.outputs)))
        for tensor in result.outputs:
            parts += [
                _text(tensor.name),
                _text(tensor.datatype),
                bytes([len(tensor.shape)]),
                struct.pack(f"<{len(tensor.shape)}q", *tensor.shape),
                _U64.pack(len(tensor.data)),
                tensor.data,
            ]
        body = b"".join(parts)
        return body + hmac.new(self._secret, body, hashlib.sha256).digest()

    def unpack(self, key: bytes, model: str, value: bytes) -> InferResult:
        """The result in `value`, if it is signed by us and was stored for `key`."""
        if len(value) < len(MAGIC) + len(key) + SIGNATURE_SIZE:
            raise InvalidEntry("too short")
        body, signature = value[:-SIGNATURE_SIZE], value[-SIGNATURE_SIZE:]
        expected = hmac.new(self._secret, body, hashlib.sha256).digest()
        if not hmac.compare_digest(signature, expected):
            raise InvalidEntry("bad signature")
        magic = body[: len(MAGIC)]
        if magic not in (MAGIC, FIRST_MAGIC):
            raise InvalidEntry("unknown format")
        if not hmac.compare_digest(body[len(MAGIC) : len(MAGIC) + len(key)], key):
            raise InvalidEntry("stored for another key")
        try:
            return _read(body, len(MAGIC) + len(key), model, timed=magic == MAGIC)
        except (struct.error, IndexError, UnicodeDecodeError) as exc:
            raise InvalidEntry(f"malformed: {exc}") from exc


def _text(value: str) -> bytes:
    encoded = value.encode()
    return _U16.pack(len(encoded)) + encoded


def _read(body: bytes, offset: int, model: str, timed: bool) -> InferResult:
    view = memoryview(body)

    def text() -> str:
        nonlocal offset
        (length,) = _U16.unpack_from(view, offset)
        offset += 2
        value = bytes(view[offset : offset + length]).decode()
        offset += length
        return value

    version = text()
    triton_s = 0.0
    if timed:
        (triton_s,) = _F64.unpack_from(view, offset)
        offset += 8
    (count,) = _U16.unpack_from(view, offset)
    offset += 2
    outputs = []
    for _ in range(count):
        name, datatype = text(), text()
        rank = view[offset]
        offset += 1
        shape = struct.unpack_from(f"<{rank}q", view, offset)
        offset += 8 * rank
        (size,) = _U64.unpack_from(view, offset)
        offset += 8
        if offset + size > len(view):
            raise IndexError("data runs past the end")
        outputs.append(Tensor(name, datatype, tuple(shape), bytes(view[offset : offset + size])))
        offset += size
    if offset != len(view):
        raise IndexError("trailing bytes")
    return InferResult(model, version, tuple(outputs), triton_s)
