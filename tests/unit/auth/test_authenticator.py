"""Authentication outcomes, remembering, revocation and the key store going away."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from auth import (
    ApiKey,
    Authenticator,
    AuthUnavailable,
    ExpiredKey,
    InMemoryKeyStore,
    InvalidKey,
    KeyHasher,
    KeyRecord,
    KeyService,
    MalformedKey,
    MissingKey,
    RevokedKey,
)
from resilience import StoreUnavailable

HASHER = KeyHasher(b"unit-test-pepper-0123456789")


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FlakyStore(InMemoryKeyStore):
    """An in-memory store that can be switched off, counting lookups."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.lookups = 0
        self.gate: asyncio.Event | None = None

    async def get(self, key_id: str) -> KeyRecord | None:
        self.lookups += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise StoreUnavailable("down")
        return await super().get(key_id)


class Recorder:
    def __init__(self) -> None:
        self.states: list[bool] = []

    def store_degraded(self, degraded: bool) -> None:
        self.states.append(degraded)


def setup(**options: Any) -> tuple[FlakyStore, Authenticator, KeyService, Clock, Recorder]:
    store = FlakyStore()
    clock = Clock()
    recorder = Recorder()
    authenticator = Authenticator(
        store, HASHER, clock=clock, wall_clock=clock, observer=recorder, **options
    )
    return store, authenticator, KeyService(store, HASHER, wall_clock=clock), clock, recorder


def run(coroutine: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(coroutine())


def test_each_refusal_has_its_own_error() -> None:
    store, authenticator, service, clock, _ = setup()

    async def scenario() -> None:
        live = await service.create("live", models=["*"])
        revoked = await service.create("revoked")
        await service.revoke(revoked.record.id)
        expiring = await service.create("expiring", expires_in_s=10)
        assert (await authenticator.authenticate(str(live.key))).name == "live"
        with pytest.raises(MissingKey):
            await authenticator.authenticate(None)
        with pytest.raises(MalformedKey):
            await authenticator.authenticate("gwk_nope")
        lookups = store.lookups
        typo = str(live.key)[:-1] + ("0" if str(live.key)[-1] != "0" else "1")
        with pytest.raises(MalformedKey):
            await authenticator.authenticate(typo)
        assert store.lookups == lookups  # malformed keys never reach the store
        with pytest.raises(InvalidKey) as unknown:
            await authenticator.authenticate(str(ApiKey.generate()))
        with pytest.raises(InvalidKey) as wrong_secret:
            await authenticator.authenticate(str(ApiKey(live.record.id, ApiKey.generate().secret)))
        assert unknown.value.message == wrong_secret.value.message
        with pytest.raises(RevokedKey):
            await authenticator.authenticate(str(revoked.key))
        clock.now += 11
        with pytest.raises(ExpiredKey):
            await authenticator.authenticate(str(expiring.key))

    run(scenario)


def test_remembered_keys_skip_the_store_until_remember_s() -> None:
    store, authenticator, service, clock, _ = setup(remember_s=5)

    async def scenario() -> None:
        issued = await service.create("k")
        for _ in range(10):
            await authenticator.authenticate(str(issued.key))
        assert store.lookups == 1
        await service.revoke(issued.record.id)
        before = store.lookups
        await authenticator.authenticate(str(issued.key))  # still remembered: within 5 s
        assert store.lookups == before
        clock.now += 5
        with pytest.raises(RevokedKey):
            await authenticator.authenticate(str(issued.key))
        assert store.lookups == before + 1

    run(scenario)


def test_forget_makes_a_revocation_immediate() -> None:
    _, authenticator, service, _, _ = setup(remember_s=60)

    async def scenario() -> None:
        issued = await service.create("k")
        await authenticator.authenticate(str(issued.key))
        await service.revoke(issued.record.id)
        authenticator.forget(issued.record.id)
        with pytest.raises(RevokedKey):
            await authenticator.authenticate(str(issued.key))

    run(scenario)


def test_store_down_remembered_keys_work_for_the_stale_window_unknown_get_503() -> None:
    store, authenticator, service, clock, recorder = setup(remember_s=5, stale_window_s=60)

    async def scenario() -> None:
        used = await service.create("used")
        unused = await service.create("unused")
        await authenticator.authenticate(str(used.key))
        store.down = True
        clock.now += 30
        assert (await authenticator.authenticate(str(used.key))).name == "used"
        with pytest.raises(AuthUnavailable):
            await authenticator.authenticate(str(unused.key))
        with pytest.raises(AuthUnavailable):
            await authenticator.authenticate(str(ApiKey.generate()))
        clock.now += 40  # 70 s since verification: past 5 + 60
        with pytest.raises(AuthUnavailable):
            await authenticator.authenticate(str(used.key))
        store.down = False
        assert (await authenticator.authenticate(str(unused.key))).name == "unused"

    run(scenario)
    assert recorder.states == [True, False]  # reported once per change


def test_concurrent_lookups_of_one_key_share_one_store_call() -> None:
    store, authenticator, service, _, _ = setup()

    async def scenario() -> None:
        issued = await service.create("k")
        store.gate = asyncio.Event()
        tasks = [
            asyncio.create_task(authenticator.authenticate(str(issued.key))) for _ in range(20)
        ]
        await asyncio.sleep(0.01)
        store.gate.set()
        records = await asyncio.gather(*tasks)
        assert {r.id for r in records} == {issued.record.id}
        assert store.lookups == 1

    run(scenario)


def test_last_used_is_recorded_in_the_background_at_most_once_per_interval() -> None:
    store, authenticator, service, clock, _ = setup(touch_interval_s=60)

    async def scenario() -> None:
        issued = await service.create("k")
        await authenticator.authenticate(str(issued.key))
        await authenticator.close()
        first = store.records[issued.record.id].last_used_at
        assert first == clock.now
        clock.now += 10
        await authenticator.authenticate(str(issued.key))
        await authenticator.close()
        assert store.records[issued.record.id].last_used_at == first

    run(scenario)


class CountingHasher(KeyHasher):
    def __init__(self) -> None:
        super().__init__(b"unit-test-pepper-0123456789")
        self.hashed = 0

    def hash(self, key: ApiKey) -> str:
        self.hashed += 1
        return super().hash(key)


def test_a_key_that_passed_is_not_hashed_again_while_its_record_keeps_its_hash() -> None:
    store = FlakyStore()
    clock = Clock()
    hasher = CountingHasher()
    authenticator = Authenticator(store, hasher, clock=clock, wall_clock=clock, max_remembered=2)
    service = KeyService(store, HASHER, wall_clock=clock)

    async def scenario() -> None:
        first, second, third = [await service.create(name) for name in "abc"]
        for _ in range(5):
            await authenticator.authenticate(str(first.key))
        assert hasher.hashed == 1
        wrong = str(ApiKey(first.record.id, ApiKey.generate().secret))
        for _ in range(2):  # a failing key is hashed each time, never remembered
            with pytest.raises(InvalidKey):
                await authenticator.authenticate(wrong)
        assert hasher.hashed == 3
        # The record's hash changes (the key's secret was replaced): the text that matched
        # the old hash is checked again, and fails.
        record = store.records[first.record.id]
        store.records[first.record.id] = record.model_copy(
            update={"hash": HASHER.hash(ApiKey.generate())}
        )
        authenticator.forget(first.record.id)
        with pytest.raises(InvalidKey):
            await authenticator.authenticate(str(first.key))
        # At most max_remembered keys are kept; the others are hashed again, and still pass.
        for _ in range(2):
            for issued in (second, third, second):
                assert (await authenticator.authenticate(str(issued.key))).id == issued.record.id
        await authenticator.close()

    run(scenario)


def test_made_up_key_ids_never_push_real_keys_out() -> None:
    store, authenticator, service, _, _ = setup(max_remembered=10, max_unknown=5)

    async def scenario() -> None:
        issued = await service.create("real")
        await authenticator.authenticate(str(issued.key))
        real_lookups = store.lookups
        for _ in range(100):  # made-up ids, well formed
            with pytest.raises(InvalidKey):
                await authenticator.authenticate(str(ApiKey.generate()))
        assert store.lookups == real_lookups + 100
        await authenticator.authenticate(str(issued.key))
        assert store.lookups == real_lookups + 100  # still remembered: no lookup
        assert len(authenticator._unknown) == 5  # bounded
        made_up = str(ApiKey.generate())
        for _ in range(3):  # the same unknown id: one lookup per remember_s
            with pytest.raises(InvalidKey):
                await authenticator.authenticate(made_up)
        assert store.lookups == real_lookups + 101

    run(scenario)
