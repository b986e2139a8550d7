"""Which registry version each Triton version was published from, kept in Redis so every
gateway replica (and `/admin/models`) sees it: one hash per model (one key: cluster-safe),

    gateway:registry:<model>   field <Triton version> -> {"registered_model", "version",
                                                          "run_id"} as JSON
"""

from __future__ import annotations

import orjson
import redis.asyncio as aioredis

from gateway.control.registry.mlflow_source import RegistryVersion
from resilience import CircuitBreaker

PREFIX = "gateway:registry:"


class Provenance:
    def __init__(self, client: aioredis.Redis, breaker: CircuitBreaker) -> None:
        self._redis = client
        self._breaker = breaker

    async def record(self, model: str, triton_version: str, source: RegistryVersion) -> None:
        value = orjson.dumps(source.as_dict())
        await self._breaker.call(lambda: self._redis.hset(PREFIX + model, triton_version, value))

    async def of_model(self, model: str) -> dict[str, RegistryVersion]:
        """Triton version -> where it came from."""
        fields = await self._breaker.call(lambda: self._redis.hgetall(PREFIX + model))
        found = {}
        for version, value in fields.items():
            document = orjson.loads(value)
            text = version.decode() if isinstance(version, bytes) else version
            found[text] = RegistryVersion(
                document["registered_model"], document["version"], document["run_id"]
            )
        return found
