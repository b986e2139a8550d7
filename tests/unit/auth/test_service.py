"""Key administration: create, rotate with overlap, revoke, bootstrap admin."""

from __future__ import annotations

import asyncio

import pytest

from auth import ApiKey, InMemoryKeyStore, KeyConflict, KeyHasher, KeyService, UnknownKey

HASHER = KeyHasher(b"unit-test-pepper-0123456789")


class Clock:
    now = 5_000.0

    def __call__(self) -> float:
        return self.now


def test_create_stores_only_a_hash_and_defaults_burst_to_the_rate() -> None:
    store = InMemoryKeyStore()
    service = KeyService(store, HASHER)
    issued = asyncio.run(service.create("team-a", models=["digits_*"], rate_limit_per_second=2.5))
    record = store.records[issued.key.id]
    assert issued.key.secret not in record.model_dump_json()
    assert record.burst == 3 and record.models == ("digits_*",)
    assert record.allows_model("digits_classifier") and not record.allows_model(
        "tabular_classifier"
    )
    assert "hash" not in record.public()


def test_rotation_keeps_the_old_key_for_the_overlap_only() -> None:
    clock = Clock()
    store = InMemoryKeyStore()
    service = KeyService(store, HASHER, rotation_overlap_s=100, wall_clock=clock)

    async def scenario() -> None:
        old = await service.create("svc", models=["*"], rate_limit_per_second=5, burst=9)
        new, retired = await service.rotate(old.record.id)
        assert new.record.id != old.record.id
        assert (new.record.models, new.record.rate_limit_per_second, new.record.burst) == (
            ("*",),
            5,
            9,
        )
        assert retired.expires_at == clock.now + 100
        _, at_once = await service.rotate(new.record.id, overlap_s=0)
        assert at_once.expires_at == clock.now
        with pytest.raises(UnknownKey):
            await service.rotate("nope")

    asyncio.run(scenario())


def test_revoke_is_idempotent_and_unknown_ids_are_reported() -> None:
    service = KeyService(InMemoryKeyStore(), HASHER)

    async def scenario() -> None:
        issued = await service.create("k")
        first = await service.revoke(issued.record.id)
        second = await service.revoke(issued.record.id)
        assert first.revoked_at is not None and first.revoked_at == second.revoked_at
        with pytest.raises(UnknownKey):
            await service.revoke("missing")

    asyncio.run(scenario())


def test_ensure_admin_creates_once_and_refuses_a_foreign_secret() -> None:
    store = InMemoryKeyStore()
    service = KeyService(store, HASHER)
    key = ApiKey.generate()

    async def scenario() -> None:
        assert not await service.has_live_admin()
        created = await service.ensure_admin(key)
        assert created.admin and created.allows_model("anything")
        assert (await service.ensure_admin(key)).created_at == created.created_at
        assert await service.has_live_admin()
        with pytest.raises(KeyConflict):
            await service.ensure_admin(ApiKey(key.id, ApiKey.generate().secret))

    asyncio.run(scenario())
