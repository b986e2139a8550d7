"""Request inflation within the body limit, and the response encoding a client accepts."""

from __future__ import annotations

import gzip
import zlib

import pytest

from gateway.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from gateway.rest.compression import chosen_encoding, compress, inflate

BODY = b'{"inputs": []}' * 10


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_round_trip(encoding: str) -> None:
    assert inflate(compress(BODY, encoding), encoding.upper().encode(), len(BODY)) == BODY


def test_identity_and_no_header_pass_through() -> None:
    assert inflate(BODY, None, 10) == BODY  # the raw limit was applied when reading
    assert inflate(BODY, b"identity", 10) == BODY


def test_the_limit_applies_to_the_inflated_size() -> None:
    bomb = zlib.compress(b"\0" * 10_000_000)
    assert len(bomb) < 20_000
    with pytest.raises(PayloadTooLarge, match="inflated"):
        inflate(bomb, b"deflate", 1_000_000)
    with pytest.raises(PayloadTooLarge):
        inflate(gzip.compress(BODY), b"gzip", len(BODY) - 1)


def test_bad_data_and_unknown_encodings() -> None:
    with pytest.raises(BadRequest, match="not valid gzip"):
        inflate(b"plain text", b"gzip", 100)
    with pytest.raises(BadRequest, match="ends before"):
        inflate(gzip.compress(BODY)[:-12], b"gzip", 1000)
    with pytest.raises(BadRequest, match="11 bytes after the gzip stream"):
        inflate(gzip.compress(BODY) + b"second part", b"gzip", 1000)
    with pytest.raises(BadRequest, match="after the gzip stream"):  # a second member
        inflate(gzip.compress(BODY) + gzip.compress(b"\0" * 100_000), b"gzip", 1000)
    with pytest.raises(UnsupportedMediaType, match="'br'"):
        inflate(BODY, b"br", 1000)


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, None),
        (b"identity", None),
        (b"gzip", "gzip"),
        (b"deflate", "deflate"),
        (b"deflate, gzip;q=0.5", "gzip"),
        (b"gzip;q=0, deflate", "deflate"),
        (b"*", "gzip"),
        (b"br", None),
    ],
)
def test_chosen_encoding(accept: bytes | None, chosen: str | None) -> None:
    assert chosen_encoding(accept) == chosen
