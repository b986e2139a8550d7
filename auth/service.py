"""Managing keys: create, list, revoke, rotate, and the bootstrap admin key.

Used by both the admin REST API and the `gateway keys` CLI. Creating a key is the only
time its full text exists outside the caller's hands; the store keeps its hash.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from auth.hashing import KeyHasher
from auth.keys import ApiKey
from auth.records import KeyRecord
from auth.store import KeyStore


class UnknownKey(LookupError):
    """No key record has that id."""


class KeyConflict(ValueError):
    """A record with that id exists but belongs to a different secret."""


@dataclass(frozen=True)
class IssuedKey:
    """A newly created key: the record and the full key text (shown once)."""

    record: KeyRecord
    key: ApiKey


class KeyService:
    """Key administration on top of a `KeyStore`."""

    def __init__(
        self,
        store: KeyStore,
        hasher: KeyHasher,
        *,
        rotation_overlap_s: float = 86_400.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._hasher = hasher
        self._rotation_overlap_s = rotation_overlap_s
        self._wall_clock = wall_clock

    async def create(
        self,
        name: str,
        *,
        models: Sequence[str] = (),
        admin: bool = False,
        rate_limit_per_second: float = 0.0,
        burst: int | None = None,
        expires_in_s: float | None = None,
        tenant: str | None = None,
        private_cache: bool = False,
        key: ApiKey | None = None,
    ) -> IssuedKey:
        key = key or ApiKey.generate()
        now = self._wall_clock()
        record = KeyRecord(
            id=key.id,
            name=name,
            hash=self._hasher.hash(key),
            models=tuple(models),
            admin=admin,
            rate_limit_per_second=rate_limit_per_second,
            burst=burst if burst is not None else max(1, math.ceil(rate_limit_per_second)),
            created_at=now,
            expires_at=None if expires_in_s is None else now + expires_in_s,
            tenant=tenant,
            private_cache=private_cache,
        )
        await self._store.put(record)
        return IssuedKey(record, key)

    async def restore(self, records: Sequence[KeyRecord]) -> int:
        """Put exported records back as they were (hashes, scopes, states; no secret was
        ever exported); the store's sentinel with them. Returns how many."""
        for record in records:
            await self._store.put(record)
        return len(records)

    async def list(self) -> list[KeyRecord]:
        return await self._store.list()

    async def revoke(self, key_id: str) -> KeyRecord:
        record = await self._existing(key_id)
        if record.revoked_at is None:
            await self._store.update(key_id, revoked_at=self._wall_clock())
        return await self._existing(key_id)

    async def rotate(
        self, key_id: str, overlap_s: float | None = None
    ) -> tuple[IssuedKey, KeyRecord]:
        """Issue a replacement with the same name, scopes and limits; the old key keeps
        working for the overlap (unless it expires sooner), then expires."""
        old = await self._existing(key_id)
        now = self._wall_clock()
        remaining = None if old.expires_at is None else max(0.0, old.expires_at - now)
        issued = await self.create(
            old.name,
            models=old.models,
            admin=old.admin,
            rate_limit_per_second=old.rate_limit_per_second,
            burst=old.burst,
            expires_in_s=remaining,
            tenant=old.tenant,
            private_cache=old.private_cache,
        )
        overlap = self._rotation_overlap_s if overlap_s is None else overlap_s
        retire_at = now + overlap
        if old.expires_at is None or old.expires_at > retire_at:
            await self._store.update(key_id, expires_at=retire_at)
        return issued, await self._existing(key_id)

    async def has_live_admin(self) -> bool:
        now = self._wall_clock()
        return any(r.admin and r.is_live(now) for r in await self._store.list())

    async def ensure_admin(self, key: ApiKey, name: str = "bootstrap admin") -> KeyRecord:
        """Make `key` an admin key (with access to every model) unless it already is one.

        A revoked bootstrap key stays revoked: revocation is an operator's decision.
        """
        record = await self._store.get(key.id)
        if record is None:
            return (await self.create(name, models=["*"], admin=True, key=key)).record
        if not self._hasher.matches(key, record.hash):
            raise KeyConflict(f"key id {key.id} exists with a different secret")
        return record

    async def _existing(self, key_id: str) -> KeyRecord:
        record = await self._store.get(key_id)
        if record is None:
            raise UnknownKey(key_id)
        return record
