"""Capacity: requests held per worker and per key, refused past each limit, released always."""

from __future__ import annotations

import pytest

from gateway.pipeline.capacity import Capacity, KeyAtCapacity, Overloaded


def test_a_full_worker_sheds_and_a_released_hold_makes_room() -> None:
    capacity = Capacity(limit=2, per_key=0, retry_after_s=3)
    with capacity.hold("a"), capacity.hold("b"):
        assert capacity.full
        with pytest.raises(Overloaded) as shed, capacity.hold("c"):
            pass
        assert shed.value.headers()["Retry-After"] == "3"
        assert capacity.in_flight == 2  # the refused request took nothing
    assert capacity.in_flight == 0
    with pytest.raises(RuntimeError), capacity.hold(None):
        raise RuntimeError("the request failed")
    assert capacity.in_flight == 0  # released on failure too


def test_a_key_over_its_share_is_refused_and_other_keys_are_not() -> None:
    capacity = Capacity(limit=0, per_key=2, retry_after_s=1)
    with capacity.hold("a"), capacity.hold("a"):
        with pytest.raises(KeyAtCapacity), capacity.hold("a"):
            pass
        with capacity.hold("b"):
            assert capacity.in_flight == 3
    with pytest.raises(RuntimeError), capacity.hold("a"):
        raise RuntimeError("the request failed")
    assert capacity._by_key == {}  # no entry left for keys with nothing in flight


def test_a_key_over_its_share_is_told_so_even_when_the_worker_is_full() -> None:
    capacity = Capacity(limit=2, per_key=1, retry_after_s=1)
    with capacity.hold("a"), capacity.hold("b"):
        with pytest.raises(KeyAtCapacity), capacity.hold("a"):
            pass
        with pytest.raises(Overloaded), capacity.hold("c"):
            pass


def test_a_key_never_holds_more_than_half_of_what_others_leave_free() -> None:
    capacity = Capacity(limit=12, per_key=100, retry_after_s=1)
    held: list[object] = []

    def flood(key: str) -> int:
        """Requests of `key` admitted until its share is reached (each keeps its hold)."""
        admitted = 0
        while True:
            hold = capacity.hold(key)
            try:
                hold.__enter__()
            except KeyAtCapacity:
                return admitted
            held.append(hold)
            admitted += 1

    assert flood("a") == 6  # alone: half the worker
    assert flood("b") == 3  # (12 - 6) // 2
    assert flood("a") == 0  # a: (12 - 3) // 2 = 4 < 6 held
    assert capacity.in_flight == 9
    assert flood("victim") >= 1  # room is left for a key that is not flooding
    assert not capacity.full
    one = Capacity(limit=12, per_key=2, retry_after_s=1)
    assert one.share(0) == 2  # the configured share when it is the smaller
