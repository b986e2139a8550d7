"""PopularRequests: the most frequent recent requests per version, bounded."""

from __future__ import annotations

from gateway.cache.popular import PopularRequests
from gateway.protocol.types import InferRequest


def request(n: int) -> InferRequest:
    return InferRequest("m", "", (), id=str(n))


def test_the_most_frequent_come_first_and_versions_are_apart() -> None:
    popular = PopularRequests(capacity=100)
    for n, times in ((1, 5), (2, 9), (3, 1)):
        popular.seen("m", "1", bytes([n]), "", request(n))
        for _ in range(times - 1):
            popular.seen("m", "1", bytes([n]), "", None)  # hits: counted, not decoded
    assert [r.id for _, r in popular.top("m", "1", 2)] == ["2", "1"]
    assert popular.top("m", "2", 5) == []
    popular.forget("m")
    assert popular.top("m", "1", 5) == []


def test_a_request_seen_only_as_a_hit_is_not_offered_until_decoded() -> None:
    popular = PopularRequests()
    popular.seen("m", "1", b"k", "tenant", None)
    assert popular.top("m", "1", 5) == []
    popular.seen("m", "1", b"k", "tenant", request(7))
    assert popular.top("m", "1", 5) == [("tenant", request(7))]


def test_a_full_table_keeps_the_frequent_half_and_follows_what_is_asked_now() -> None:
    popular = PopularRequests(capacity=10)
    for n in range(10):
        for _ in range(n + 1):
            popular.seen("m", "1", bytes([n]), "", request(n))
    for n in range(10, 30):  # a new popular set
        for _ in range(20):
            popular.seen("m", "1", bytes([n]), "", request(n))
    top = [int(r.id or 0) for _, r in popular.top("m", "1", 5)]
    assert all(n >= 10 for n in top)
