"""Script calls of concurrent requests sent to Redis together: one pipeline per event-loop
turn (auto-pipelining).

    scripts = script_calls(client)             the transport, chosen once for the client
    await scripts.run(script, keys, args)      (or scripts.submit(...): the answer's future,
                                               for a call nobody waits for)
      the first call of a turn schedules a flush for the end of the turn (`call_soon`);
      every call made before it runs joins the same batch
      flush: one call alone goes as it is (EVALSHA, EVAL if Redis lost the script);
             two or more go as one pipeline of EVALSHAs, no transaction; a script Redis
             lost (NOSCRIPT) is loaded and its calls sent again

Through redis-py one round trip costs the process ~80 µs of CPU, a command in a pipeline
~20 (`loadtests/investigations/redis_call_cost.py`); with 16 connections of cache misses the
get-or-lock and store calls of several requests fall in the same turn (a miss took ~20 %
less CPU).

On a plain redis:// or unix:// Redis the batch goes on a connection of the gateway's own
(`gateway.backends.redis.wire`): one write for the turn's calls, replies settling the callers'
futures as they are parsed, no task or pipeline object at all (EVAL in place of an EVALSHA
Redis answers NOSCRIPT). TLS and Sentinel clients batch through redis-py's pipelines, as
described above.

Each call keeps its own outcome: a failure of the whole batch (Redis down, a timeout) is
raised to every caller in it, and each caller's circuit breaker counts it as before. A
caller cancelled meanwhile (its deadline) gets nothing; its command may still run, as it
could before. On a Redis Cluster each call goes alone: a cluster pipeline fails as a whole
when one primary is down, and a node that is down must fail only the calls for its slots.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from gateway.backends.redis.wire import RedisWire, WireAddress

Key = str | bytes
Arg = str | bytes | int | float


@dataclass(slots=True)
class _Call:
    script: AsyncScript
    keys: Sequence[Key]
    args: Sequence[Arg]
    answer: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class ScriptCalls(Protocol):
    """Registered scripts run for the cache, the calls of one event-loop turn together."""

    @property
    def batches(self) -> int:
        """Batches sent so far (writes on the gateway's own connection, or pipelines)."""

    async def run(self, script: AsyncScript, keys: Sequence[Key], args: Sequence[Arg]) -> Any:
        """The call's answer."""

    def submit(
        self, script: AsyncScript, keys: Sequence[Key], args: Sequence[Arg]
    ) -> asyncio.Future[Any]:
        """The call, joining this turn's batch; its answer's future (for a call nobody
        waits for: no coroutine or task of its own on the way)."""

    def close(self) -> None:
        """Close a connection of the gateway's own (redis-py's close with their client)."""


def script_calls(client: aioredis.Redis) -> ScriptCalls:
    """The transport of the cache's script calls on `client`, chosen once: the gateway's own
    connection on a plain or unix-socket Redis, redis-py pipelines on TLS or Sentinel, one
    call at a time on a Cluster."""
    if isinstance(client, RedisCluster):
        return OneByOne()
    address = WireAddress.of(client)
    if address is not None:
        return OnTheWire(RedisWire(address))
    return Pipelined(client)


class OnTheWire:
    """Calls on the gateway's own connection, which writes a turn's calls at once."""

    def __init__(self, wire: RedisWire) -> None:
        self._wire = wire

    @property
    def batches(self) -> int:
        return self._wire.writes

    async def run(self, script: AsyncScript, keys: Sequence[Key], args: Sequence[Arg]) -> Any:
        return await self.submit(script, keys, args)

    def submit(
        self, script: AsyncScript, keys: Sequence[Key], args: Sequence[Arg]
    ) -> asyncio.Future[Any]:
        count = len(keys)
        return self._wire.call(
            "EVALSHA",
            script.sha,
            count,
            *keys,
            *args,
            retry=("EVAL", script.script, count, *keys, *args),
        )

    def close(self) -> None:
        self._wire.close()


class OneByOne:
    """Each call alone (a Redis Cluster: a pipeline fails as a whole when one primary is
    down, and a node that is down must fail only the calls for its slots)."""

    batches = 0

    async def run(self, script: AsyncScript, keys: Sequence[Key], args: Sequence[Arg]) -> Any:
        return await script(keys=keys, args=args)

    def submit(
        self, script: AsyncScript, keys: Sequence[Key], args: Sequence[Arg]
    ) -> asyncio.Future[Any]:
        return asyncio.ensure_future(script(keys=keys, args=args))

    def close(self) -> None:
        pass


class Pipelined:
    """A turn's calls as one redis-py pipeline of EVALSHAs (or one call alone)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._pending: list[_Call] = []
        self._sending: set[asyncio.Task[None]] = set()
        self._pipelines = 0

    @property
    def batches(self) -> int:
        return self._pipelines

    async def run(self, script: AsyncScript, keys: Sequence[Key], args: Sequence[Arg]) -> Any:
        return await self.submit(script, keys, args)

    def submit(
        self, script: AsyncScript, keys: Sequence[Key], args: Sequence[Arg]
    ) -> asyncio.Future[Any]:
        call = _Call(script, keys, args)
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(call)
        return call.answer

    def close(self) -> None:
        pass

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        self._pipelines += 1
        task = asyncio.ensure_future(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Call]) -> None:
        try:
            if len(batch) == 1:
                call = batch[0]
                _settle(call, await call.script(keys=call.keys, args=call.args))
                return
            results = await self._pipelined(batch)
            lost = [c for c, r in zip(batch, results, strict=True) if isinstance(r, NoScriptError)]
            for call, result in zip(batch, results, strict=True):
                if not isinstance(result, NoScriptError):
                    _settle(call, result)
            if lost:
                for script in {id(c.script): c.script for c in lost}.values():
                    await self._redis.script_load(script.script)
                for call, result in zip(lost, await self._pipelined(lost), strict=True):
                    _settle(call, result)
        except asyncio.CancelledError:  # the loop is closing
            for call in batch:
                call.answer.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - every caller hears how its batch failed
            for call in batch:
                if not call.answer.done():
                    call.answer.set_exception(exc)

    async def _pipelined(self, batch: list[_Call]) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for call in batch:
                pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
            results: list[Any] = await pipe.execute(raise_on_error=False)
            return results


def _settle(call: _Call, result: Any) -> None:
    if call.answer.done():  # the caller was cancelled
        return
    if isinstance(result, Exception):
        call.answer.set_exception(result)
    else:
        call.answer.set_result(result)
