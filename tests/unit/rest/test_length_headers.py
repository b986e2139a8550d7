"""Length headers are ASCII digits, nothing int() would also accept."""

from __future__ import annotations

import pytest

from gateway.errors import BadRequest
from gateway.rest.asgi import int_header

NAME = b"inference-header-content-length"


@pytest.mark.parametrize(("value", "number"), [(b"0", 0), (b"181", 181), (b" 42 ", 42)])
def test_digits_are_read(value: bytes, number: int) -> None:
    assert int_header([(NAME, value)], NAME) == number


@pytest.mark.parametrize(
    "value", [b"1_8_1", b"+7", b"-1", b"0x10", b"1e3", b"", "١٢".encode(), b"9" * 19]
)
def test_anything_else_is_a_bad_request(value: bytes) -> None:
    with pytest.raises(BadRequest, match="inference-header-content-length must be"):
        int_header([(NAME, value)], NAME)


def test_an_absent_header_is_none() -> None:
    assert int_header([], NAME) is None
