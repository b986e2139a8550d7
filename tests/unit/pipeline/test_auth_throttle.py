"""Failed authentications per client address: past the limit the address waits."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gateway.grpc_api.service import peer_address
from gateway.pipeline.auth_throttle import AddressThrottled, FailedAuthThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_past_its_failures_waits_until_the_minute_ends() -> None:
    clock = Clock()
    throttle = FailedAuthThrottle(3, clock=clock)
    for _ in range(3):
        throttle.check("10.0.0.1")
        throttle.failed("10.0.0.1")
    with pytest.raises(AddressThrottled) as waiting:
        throttle.check("10.0.0.1")
    assert waiting.value.status == 429 and waiting.value.headers()["Retry-After"] == "61"
    throttle.check("10.0.0.2")  # another address is not affected
    throttle.check(None)  # no address known: never throttled
    clock.now += 60
    throttle.check("10.0.0.1")  # a new minute


def test_off_and_bounded() -> None:
    off = FailedAuthThrottle(0)
    for _ in range(100):
        off.failed("a")
    off.check("a")
    bounded = FailedAuthThrottle(1, max_addresses=2)
    for address in ("a", "b", "c"):
        bounded.failed(address)
    bounded.check("a")  # forgotten: the least recently failing went first
    with pytest.raises(AddressThrottled):
        bounded.check("c")


@pytest.mark.parametrize(
    ("peer", "address"),
    [("ipv4:10.1.2.3:5555", "10.1.2.3"), ("ipv6:[::1]:40000", "::1"), ("unix:/tmp/s", None)],
)
def test_the_grpc_peer_address(peer: str, address: str | None) -> None:
    context = SimpleNamespace(peer=lambda: peer)
    assert peer_address(context) == address  # type: ignore[arg-type]
