"""Signed entries: round trip, and every kind of tampering refused."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace

import numpy as np
import pytest

from gateway.cache import EntryCodec, InvalidEntry
from gateway.cache.entry import FIRST_MAGIC, MAGIC, SIGNATURE_SIZE
from gateway.protocol.datatypes import encode_bytes_elements
from gateway.protocol.types import InferResult, Tensor

KEY = bytes(range(32))
RESULT = InferResult(
    "m",
    "3",
    (
        Tensor("probabilities", "FP32", (2, 3), np.arange(6, dtype="<f4").tobytes()),
        Tensor("label", "BYTES", (2,), encode_bytes_elements([b"cat", b""])),
        Tensor("empty", "INT64", (0, 4), b""),
    ),
)
CODEC = EntryCodec(b"s" * 32)


def test_round_trip() -> None:
    assert CODEC.unpack(KEY, "m", CODEC.pack(KEY, RESULT)) == RESULT


def test_the_triton_time_travels_with_the_entry_and_first_format_entries_still_read() -> None:
    timed = replace(RESULT, triton_s=0.0125)
    assert CODEC.unpack(KEY, "m", CODEC.pack(KEY, timed)).triton_s == 0.0125
    # the first format: no Triton time after the version (re-signed as the codec would)
    value = CODEC.pack(KEY, timed)[:-SIGNATURE_SIZE]
    version_end = len(MAGIC) + len(KEY) + 2 + len(b"3")
    first = FIRST_MAGIC + value[len(MAGIC) : version_end] + value[version_end + 8 :]
    signed = first + hmac.new(b"s" * 32, first, hashlib.sha256).digest()
    old = CODEC.unpack(KEY, "m", signed)
    assert old == RESULT and old.triton_s == 0.0


def test_every_flipped_byte_is_refused() -> None:
    value = CODEC.pack(KEY, RESULT)
    for position in range(len(value)):
        tampered = bytearray(value)
        tampered[position] ^= 0x01
        with pytest.raises(InvalidEntry):
            CODEC.unpack(KEY, "m", bytes(tampered))


def test_an_entry_moved_to_another_key_is_refused() -> None:
    with pytest.raises(InvalidEntry, match="another key"):
        CODEC.unpack(bytes(32), "m", CODEC.pack(KEY, RESULT))


def test_entries_signed_with_another_secret_or_truncated_are_refused() -> None:
    forged = EntryCodec(b"t" * 32).pack(KEY, RESULT)
    with pytest.raises(InvalidEntry, match="signature"):
        CODEC.unpack(KEY, "m", forged)
    with pytest.raises(InvalidEntry):
        CODEC.unpack(KEY, "m", CODEC.pack(KEY, RESULT)[:20])
    with pytest.raises(InvalidEntry):
        CODEC.unpack(KEY, "m", b"")


def test_entry_is_raw_bytes_plus_a_small_fixed_overhead() -> None:
    embedding = np.random.default_rng(0).standard_normal((8, 384)).astype("<f4")
    result = InferResult("m", "1", (Tensor("embedding", "FP32", (8, 384), embedding.tobytes()),))
    value = CODEC.pack(KEY, result)
    assert len(value) <= embedding.nbytes + 128  # magic, key, framing, signature
    assert len(value) < len(json.dumps(embedding.ravel().tolist())) / 2
