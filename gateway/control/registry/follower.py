"""`RegistryFollower`: keeps traffic in step with the registry's aliases without anyone
calling sync. Every GATEWAY_MLFLOW_SYNC_S, the replica that takes a Redis lock (so one at
a time, whichever replicas run it) syncs each model of GATEWAY_MLFLOW_SYNC ({"<Triton
model>": "<registered model>"}); what changed, or was refused, is logged.
"""

from __future__ import annotations

import contextlib
import logging
import secrets

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.backends.redis.client import RELEASE_IF_OWNED
from gateway.control.registry.sync import RegistrySync
from gateway.errors import GatewayError
from gateway.runtime.repeating import Repeating

logger = logging.getLogger(__name__)

LOCK = "gateway:registry-sync-lock"


class RegistryFollower:
    def __init__(
        self, sync: RegistrySync, client: aioredis.Redis, models: dict[str, str], interval_s: float
    ) -> None:
        self._sync = sync
        self._redis = client
        self._models = models
        self._interval_s = interval_s
        self._release = client.register_script(RELEASE_IF_OWNED)
        self._rounds = Repeating(
            "registry-sync", interval_s, self._round, "registry sync skipped", tolerated=()
        )

    def start(self) -> None:
        self._rounds.start()

    async def close(self) -> None:
        await self._rounds.close()

    async def _round(self) -> None:
        token = secrets.token_hex(8)
        try:
            lock_ms = max(1000, int(self._interval_s * 2000))
            if not await self._redis.set(LOCK, token, nx=True, px=lock_ms):
                return  # another replica syncs this round
        except RedisError as exc:
            logger.debug("registry sync skipped: Redis unavailable (%s)", type(exc).__name__)
            return
        try:
            await self._sync_all()
        finally:
            with contextlib.suppress(RedisError):
                await self._release(keys=[LOCK], args=[token])

    async def _sync_all(self) -> None:
        for model, registered in self._models.items():
            try:
                report = await self._sync.sync(model, registered)
            except GatewayError as exc:
                logger.warning("registry sync of %s from %s failed: %s", model, registered, exc)
            except Exception:
                logger.exception("registry sync of %s from %s failed", model, registered)
            else:
                if report.published or report.refused:
                    logger.info("registry sync: %s", report.as_dict())
