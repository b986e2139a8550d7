"""Turn a presented key into a verified `KeyRecord`, mostly without a Redis round trip.

    authenticate(presented)
      missing?                    -> MissingKey
      well formed (checksum)?     -> MalformedKey, no lookup
      record: remembered < remember_s ago   -> no Redis call
              else fetched from the store (one lookup at a time per key id)
              store down: remembered < remember_s + stale_window_s ago -> use it (degraded)
                          otherwise -> AuthUnavailable (503, not 401)
      secret matches the record's HMAC?  -> else InvalidKey (same answer as an unknown id)
                                  (a key that matched this record's hash before: no HMAC)
      revoked? expired?           -> RevokedKey / ExpiredKey

A revoked key stops working at once in every process: revocations are announced through
the store (`follow`), and each process forgets what it remembered of the key. A process
that misses an announcement (its subscription was down) still stops within `remember_s`
while Redis is up. Revoking needs Redis; a key revoked before an outage has been forgotten
everywhere, so during the outage it gets 503 (cannot be checked), never 200. A Redis outage
does not lock out the keys in use.
`last_used_at` is written at most once per `touch_interval_s` per key, in the background.

Parsing a key and computing its HMAC took ~10 % of a cache hit's CPU, for the same few
keys over and over. Both are pure functions of the presented text (and the pepper), so
each process remembers, for up to `max_remembered` keys that passed, the text and the
stored hash it matched: while the record's hash is the same, the text matches it again.
The record itself is still fetched and checked (revoked, expired) as above. Only keys
that passed are remembered (made-up keys cannot fill it), in this process's memory only.

Ids the store does not know (made-up keys) are remembered apart, in a table of their own
(`max_unknown`, 1,000, oldest out first), so a flood of random ids costs a store lookup
each at most once per `remember_s` and never pushes the records of real keys out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from auth.errors import (
    AuthUnavailable,
    ExpiredKey,
    InvalidKey,
    MissingKey,
    RevokedKey,
)
from auth.hashing import KeyHasher
from auth.keys import ApiKey
from auth.observer import AuthObserver, NullObserver
from auth.records import KeyRecord
from auth.store import KeyStore, StoreEmptied
from resilience import REDIS_FAILURES, StoreUnavailable

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Verified:
    """A presented key that matched a record's hash (`matched`)."""

    key: ApiKey  # its repr hides the secret
    matched: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Remembered:
    record: KeyRecord | None  # None: the store said there is no such key
    fetched_at: float


class Authenticator:
    """Verifies API keys against a `KeyStore`, remembering recent answers in-process."""

    def __init__(
        self,
        store: KeyStore,
        hasher: KeyHasher,
        *,
        remember_s: float = 5.0,
        stale_window_s: float = 300.0,
        touch_interval_s: float = 60.0,
        max_remembered: int = 10_000,
        max_unknown: int = 1_000,
        observer: AuthObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._hasher = hasher
        self._remember_s = remember_s
        self._stale_window_s = stale_window_s
        self._touch_interval_s = touch_interval_s
        self._max_remembered = max_remembered
        self._observer = observer or NullObserver()
        self._clock = clock
        self._wall_clock = wall_clock
        self._remembered: OrderedDict[str, Remembered] = OrderedDict()
        self._max_unknown = max_unknown
        self._unknown: OrderedDict[str, float] = OrderedDict()  # id -> when the store said so
        self._verified: dict[str, Verified] = {}  # presented key -> what it matched
        self._lookups: dict[str, asyncio.Future[KeyRecord | None]] = {}
        self._touched: dict[str, float] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._degraded = False

    async def authenticate(self, presented: str | None) -> KeyRecord:
        if not presented:
            raise MissingKey
        verified = self._verified.get(presented)
        key = verified.key if verified is not None else ApiKey.parse(presented)
        record = await self._record(key.id)
        if record is None:
            raise InvalidKey
        if verified is None or verified.matched != record.hash:
            if not self._hasher.matches(key, record.hash):
                raise InvalidKey
            self._verify(presented, Verified(key, record.hash))
        now = self._wall_clock()
        if record.revoked_at is not None:
            raise RevokedKey
        if record.expires_at is not None and record.expires_at <= now:
            raise ExpiredKey
        self._touch(record.id, now)
        return record

    async def follow(self, changed_keys: Callable[[], AsyncIterator[str]]) -> None:
        """Forget every key announced as changed, forever (resubscribing after failures)."""
        while True:
            try:
                async for key_id in changed_keys():
                    self.forget(key_id)
            except REDIS_FAILURES as exc:
                logger.debug("key change subscription lost (%s); resubscribing", type(exc).__name__)
            except Exception:  # whatever it was, a subscription must not end for good
                logger.exception("key change subscription failed; resubscribing")
            await asyncio.sleep(1.0)

    def forget(self, key_id: str) -> None:
        """Drop what this process remembers of a key (after revoking or changing it)."""
        self._remembered.pop(key_id, None)
        self._unknown.pop(key_id, None)

    async def _record(self, key_id: str) -> KeyRecord | None:
        now = self._clock()
        remembered = self._remembered.get(key_id)
        if remembered is not None and now - remembered.fetched_at < self._remember_s:
            return remembered.record
        unknown_since = self._unknown.get(key_id)
        if unknown_since is not None and now - unknown_since < self._remember_s:
            return None
        try:
            record = await self._lookup(key_id)
        except StoreUnavailable as exc:
            self._set_degraded(True, exc)
            fresh_enough = self._remember_s + self._stale_window_s
            if (
                remembered is not None
                and remembered.record is not None
                and now - remembered.fetched_at < fresh_enough
            ):
                return remembered.record
            raise AuthUnavailable from exc
        self._set_degraded(False)
        if record is None:
            self._remember_unknown(key_id)
        else:
            self._remember(key_id, Remembered(record, self._clock()))
        return record

    async def _lookup(self, key_id: str) -> KeyRecord | None:
        """One store lookup per key id at a time; concurrent callers share its answer."""
        pending = self._lookups.get(key_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[KeyRecord | None] = asyncio.get_running_loop().create_future()
        self._lookups[key_id] = future
        try:
            record = await self._store.get(key_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: nobody else may be waiting
            raise
        else:
            future.set_result(record)
            return record
        finally:
            del self._lookups[key_id]

    def _remember(self, key_id: str, entry: Remembered) -> None:
        self._remembered[key_id] = entry
        self._remembered.move_to_end(key_id)
        while len(self._remembered) > self._max_remembered:
            self._remembered.popitem(last=False)

    def _remember_unknown(self, key_id: str) -> None:
        self._remembered.pop(key_id, None)  # a key deleted since: not a record any more
        self._unknown[key_id] = self._clock()
        self._unknown.move_to_end(key_id)
        while len(self._unknown) > self._max_unknown:
            self._unknown.popitem(last=False)

    def _verify(self, presented: str, verified: Verified) -> None:
        if len(self._verified) >= self._max_remembered:
            del self._verified[next(iter(self._verified))]  # the oldest
        self._verified[presented] = verified

    def _set_degraded(self, degraded: bool, reason: StoreUnavailable | None = None) -> None:
        if degraded == self._degraded:
            return
        self._degraded = degraded
        if isinstance(reason, StoreEmptied):
            logger.error("key store unavailable: %s", reason)
        elif degraded:
            logger.warning("key store unavailable: serving remembered keys only")
        else:
            logger.info("key store available again")
        self._observer.store_degraded(degraded)

    def _touch(self, key_id: str, now: float) -> None:
        if now - self._touched.get(key_id, 0.0) < self._touch_interval_s:
            return
        self._touched[key_id] = now
        task = asyncio.get_running_loop().create_task(self._write_last_used(key_id, now))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _write_last_used(self, key_id: str, now: float) -> None:
        try:
            await self._store.update(key_id, last_used_at=now)
        except StoreUnavailable:
            logger.debug("could not record last use of key %s", key_id)

    async def close(self) -> None:
        """Wait for background writes (bounded) so none is cut off mid-way."""
        if self._background:
            await asyncio.wait(self._background, timeout=1.0)
