"""Capacity: requests held per worker and per key, refused past each limit, released always."""

from __future__ import annotations

import pytest

from gateway.pipeline.capacity import Capacity, KeyAtCapacity, Overloaded


def test_a_full_worker_sheds_and_a_released_hold_makes_room() -> None:
    capacity = Capacity(limit=2, per_key=0, retry_after_s=3)
    with capacity.hold(), capacity.hold():
        assert capacity.full
        with pytest.raises(Overloaded) as shed, capacity.hold():
            pass
        assert shed.value.headers()["Retry-After"] == "3"
        assert capacity.in_flight == 2  # the refused request took nothing
    assert capacity.in_flight == 0
    with pytest.raises(RuntimeError), capacity.hold():
        raise RuntimeError("the request failed")
    assert capacity.in_flight == 0  # released on failure too


def test_a_key_over_its_share_is_refused_and_other_keys_are_not() -> None:
    capacity = Capacity(limit=0, per_key=2, retry_after_s=1)
    with capacity.hold_for_key("a"), capacity.hold_for_key("a"):
        with pytest.raises(KeyAtCapacity), capacity.hold_for_key("a"):
            pass
        with capacity.hold_for_key("b"):
            assert capacity.in_flight == 0  # per-key holds do not count worker-wide
    with pytest.raises(RuntimeError), capacity.hold_for_key("a"):
        raise RuntimeError("the request failed")
    assert capacity._by_key == {}  # no entry left for keys with nothing in flight


def test_a_key_never_holds_more_than_half_of_what_others_leave_free() -> None:
    capacity = Capacity(limit=12, per_key=100, retry_after_s=1)

    def flood(key: str) -> int:
        """Requests of `key` admitted until its share is reached (each holding its slots)."""
        admitted = 0
        while True:
            capacity.in_flight += 1  # hold(): taken before the key is known
            try:
                capacity._take(key)
            except KeyAtCapacity:
                capacity.in_flight -= 1
                return admitted
            admitted += 1

    assert flood("a") == 6  # alone: half the worker
    assert flood("b") == 3  # (12 - 6) // 2
    assert flood("a") == 0  # a: (12 - 3) // 2 = 4 < 6 held
    assert capacity.in_flight == 9
    assert flood("victim") >= 1  # room is left for a key that is not flooding
    one = Capacity(limit=12, per_key=2, retry_after_s=1)
    one.in_flight = 1
    assert one.share(0) == 2  # the configured share when it is the smaller
