"""HTTP compression of inference bodies, as Triton does it.

Requests may come with `Content-Encoding: gzip` or `deflate` (zlib), as `tritonclient.http`
sends with `request_compression_algorithm`; the body limit applies to the inflated size, so
a small body that inflates past GATEWAY_MAX_BODY_BYTES (a zip bomb) is a 413 and is never
inflated further than the limit. A body is one stream: bytes after it (a second gzip member,
which would otherwise go unread and unchecked) are a 400. Responses are compressed when
`Accept-Encoding` asks for gzip or deflate (`response_compression_algorithm`), and sent as
they are otherwise.
"""

from __future__ import annotations

import gzip
import zlib

from gateway.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

_WINDOW_BITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def inflate(body: bytes, content_encoding: bytes | None, limit: int) -> bytes:
    """`body` decoded as its Content-Encoding says; at most `limit` bytes once inflated."""
    encoding = (content_encoding or b"").decode("latin-1").strip().lower()
    if encoding in ("", "identity"):
        return body
    bits = _WINDOW_BITS.get(encoding)
    if bits is None:
        raise UnsupportedMediaType(
            f"Content-Encoding '{encoding}' is not supported; use gzip, deflate or identity"
        )
    decoder = zlib.decompressobj(bits)
    try:
        inflated = decoder.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"the request body is not valid {encoding} data: {exc}") from None
    if len(inflated) > limit or decoder.unconsumed_tail:
        raise PayloadTooLarge(f"the inflated request body exceeds the limit of {limit} bytes")
    if not decoder.eof:
        raise BadRequest(f"the request body ends before its {encoding} data does")
    if decoder.unused_data:  # a second gzip member, or anything else: never read, refused
        raise BadRequest(
            f"the request body has {len(decoder.unused_data)} bytes after the {encoding} "
            "stream; send one stream"
        )
    return inflated


def chosen_encoding(accept_encoding: bytes | None) -> str | None:
    """gzip or deflate if `Accept-Encoding` accepts it (q > 0), preferring gzip; else None."""
    if not accept_encoding:
        return None
    accepted: dict[str, float] = {}
    for item in accept_encoding.decode("latin-1").lower().split(","):
        name, _, parameters = item.strip().partition(";")
        quality = 1.0
        parameter = parameters.strip()
        if parameter.startswith("q="):
            try:
                quality = float(parameter[2:])
            except ValueError:
                quality = 0.0
        accepted[name.strip()] = quality
    for name in ("gzip", "deflate"):
        if accepted.get(name, accepted.get("*", 0.0)) > 0:
            return name
    return None


def compress(body: bytes, encoding: str) -> bytes:
    # Level 1: inference responses are mostly numbers; speed matters more than ratio.
    if encoding == "gzip":
        return gzip.compress(body, compresslevel=1, mtime=0)
    return zlib.compress(body, 1)
