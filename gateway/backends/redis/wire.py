"""`RedisWire`: commands to one Redis on a connection of the gateway's own, pipelined.

The cache's script calls (`gateway.backends.redis.pipelining`) are two Redis round trips of every
miss. Through redis-py's asyncio client one costs the process ~80 µs of CPU alone, a
command in a pipeline ~20 (`loadtests/investigations/redis_call_cost.py`): a pipeline
object, a pooled connection taken and given back, a stream reader waking a task. This does
what that path
needs and no more, on an asyncio protocol with `hiredis` (the C parser redis-py itself
uses) reading the replies:

    wire.call(*command)      -> the future of its reply
      the first call of an event-loop turn schedules one write at the turn's end; every
      call made before then goes in it (one send for the turn's commands)
      replies are matched to calls in order: Redis answers a connection's commands in order
      not connected: connect first (AUTH, SELECT as the URL says); calls made meanwhile go
      when it is up

Failures, each for every call waiting (the connection is closed, a later call connects
again): no reply within `timeout_s` of the oldest call's write -> redis `TimeoutError` (a
late reply would be read as the next call's); the connection lost, refused or not up
within the timeout -> redis `ConnectionError`. An error reply fails its own call only
(`ResponseError`); a call may name a `retry` command for a NOSCRIPT reply (EVAL when
Redis lost the script of an EVALSHA), sent at once in its place.

Only for a plain `redis://` or `unix://` Redis (`WireAddress.of`): TLS, Sentinel and
Cluster clients keep redis-py's own connections (the Sentinels name the primary, a cluster
its nodes).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.connection import Connection, ConnectionPool, UnixDomainSocketConnection

Arg = str | bytes | memoryview | int | float


@dataclass(frozen=True, slots=True)
class WireAddress:
    """Where and how to connect: host and port, or a unix socket path."""

    host: str
    port: int
    path: str | None
    username: str | None
    password: str | None = field(repr=False)  # never in a log line or an error
    db: int
    timeout_s: float
    connect_timeout_s: float

    @classmethod
    def of(cls, client: object) -> WireAddress | None:
        """The address of a plain redis-py client (one Redis, TCP or a unix socket, without
        TLS or a credential provider); None for any other."""
        pool = getattr(client, "connection_pool", None)
        if type(client) is not aioredis.Redis or type(pool) is not ConnectionPool:
            return None
        kind, options = pool.connection_class, pool.connection_kwargs
        if kind not in (Connection, UnixDomainSocketConnection):
            return None
        if options.get("credential_provider") is not None:
            return None
        timeout_s = options.get("socket_timeout") or 5.0
        return cls(
            host=options.get("host", "localhost"),
            port=int(options.get("port", 6379)),
            path=options.get("path") if kind is UnixDomainSocketConnection else None,
            username=options.get("username"),
            password=options.get("password"),
            db=int(options.get("db") or 0),
            timeout_s=timeout_s,
            connect_timeout_s=options.get("socket_connect_timeout") or timeout_s,
        )


@dataclass(slots=True)
class _Waiting:
    """A command written, waiting for its reply."""

    sent_at: float
    answer: asyncio.Future[Any]
    retry: tuple[Arg, ...] | None


class _Connection(asyncio.Protocol):
    """One connection's socket and reply parser; its wire keeps the calls."""

    def __init__(self, wire: RedisWire) -> None:
        self._wire = wire
        self._reader = hiredis.Reader(replyError=redis.exceptions.ResponseError)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream: always a Transport

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            while (reply := self._reader.gets()) is not False:
                self._wire.replied(self, reply)
        except hiredis.ProtocolError as exc:
            self._wire.drop(self, redis.exceptions.ConnectionError(f"not Redis: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc else ""
        self._wire.drop(self, redis.exceptions.ConnectionError(f"connection to Redis lost{reason}"))


class RedisWire:
    """Commands to one Redis, pipelined per event-loop turn, on one connection."""

    def __init__(self, address: WireAddress) -> None:
        self._address = address
        self._outgoing: list[bytes] = []  # this turn's packed commands, not yet written
        self._queued: list[tuple[asyncio.Future[Any], tuple[Arg, ...] | None]] = []
        self._waiting: deque[_Waiting] = deque()  # written, in order
        self._connection: _Connection | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop of the calls
        self.writes = 0  # sends of queued commands: how well calls are batched

    def call(self, *command: Arg, retry: tuple[Arg, ...] | None = None) -> asyncio.Future[Any]:
        """Send `command` with this turn's others; the future of its reply."""
        loop = self._loop
        if loop is None:  # looked up once: each lookup is a system call (getpid) on 3.11
            loop = self._loop = asyncio.get_running_loop()
        answer = loop.create_future()
        if not self._queued:
            loop.call_soon(self._flush)
        self._outgoing.append(_pack(command))
        self._queued.append((answer, retry))
        return answer

    def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        if self._connection is not None:
            self.drop(self._connection, redis.exceptions.ConnectionError("closed"))
        for answer, _ in self._queued:
            answer.cancel()
        self._outgoing, self._queued = [], []
        self._loop = None

    # called by the connection
    def replied(self, connection: _Connection, reply: Any) -> None:
        if not self._waiting:  # out of step with Redis: nothing it says can be trusted
            self.drop(connection, redis.exceptions.ConnectionError("a reply to no call"))
            return
        waiting = self._waiting.popleft()
        answer = waiting.answer
        if answer.done():  # its caller was cancelled
            return
        if isinstance(reply, redis.exceptions.ResponseError):
            if waiting.retry is not None and str(reply).startswith("NOSCRIPT"):
                self._send([_pack(waiting.retry)], [(answer, None)])
                return
            answer.set_exception(reply)
            return
        answer.set_result(reply)

    def drop(self, connection: _Connection, error: Exception) -> None:
        """Close `connection` and fail every call waiting on it (if it is still ours)."""
        if connection is not self._connection:
            return
        self._connection = None
        if connection.transport is not None:
            connection.transport.abort()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._waiting = self._waiting, deque()
        _fail((call.answer for call in waiting), error)

    def _flush(self) -> None:
        if self._connecting is not None or not self._queued:  # the calls go when it is up
            return
        if self._connection is None:
            self._connecting = asyncio.ensure_future(self._connect())
            return
        outgoing, queued = self._outgoing, self._queued
        self._outgoing, self._queued = [], []
        self._send(outgoing, queued)

    def _send(
        self, packed: list[bytes], calls: list[tuple[asyncio.Future[Any], tuple[Arg, ...] | None]]
    ) -> None:
        connection = self._connection
        if connection is None or connection.transport is None:
            error = redis.exceptions.ConnectionError("connection to Redis lost")
            _fail((answer for answer, _ in calls), error)
            return
        loop = self._loop or asyncio.get_running_loop()
        now = loop.time()
        self._waiting.extend(_Waiting(now, answer, retry) for answer, retry in calls)
        connection.transport.write(b"".join(packed))
        self.writes += 1
        if self._timer is None:
            self._timer = loop.call_at(now + self._address.timeout_s, self._check_deadline)

    def _check_deadline(self) -> None:
        self._timer = None
        if not self._waiting or self._connection is None:
            return
        due = self._waiting[0].sent_at + self._address.timeout_s
        loop = asyncio.get_running_loop()
        if loop.time() >= due:
            timeout = self._address.timeout_s
            error = redis.exceptions.TimeoutError(f"Redis did not answer within {timeout} s")
            self.drop(self._connection, error)
            return
        self._timer = loop.call_at(due, self._check_deadline)

    async def _connect(self) -> None:
        """Connect and greet (AUTH, SELECT); then send what was queued meanwhile, or fail it."""
        address = self._address
        loop = asyncio.get_running_loop()
        connection = _Connection(self)
        greeting: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(address.connect_timeout_s):
                if address.path is not None:
                    await loop.create_unix_connection(lambda: connection, address.path)
                else:
                    await loop.create_connection(lambda: connection, address.host, address.port)
                self._connection = connection
                if address.password is not None:
                    user = (address.username,) if address.username else ()
                    greeting.append(self._greet("AUTH", *user, address.password))
                if address.db:
                    greeting.append(self._greet("SELECT", address.db))
                for answer in greeting:
                    await answer
        except asyncio.CancelledError:  # closed meanwhile
            self.drop(connection, redis.exceptions.ConnectionError("closed"))
            raise
        except (OSError, TimeoutError, redis.exceptions.RedisError) as exc:
            self.drop(connection, redis.exceptions.ConnectionError("closed"))
            for answer in greeting:  # retrieved: nobody else waits for them
                if answer.done() and not answer.cancelled():
                    answer.exception()
            where = address.path or f"{address.host}:{address.port}"
            self._fail_queued(f"cannot connect to Redis at {where}: {type(exc).__name__}")
            return
        finally:
            self._connecting = None
        self._flush()

    def _greet(self, *command: Arg) -> asyncio.Future[Any]:
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._send([_pack(command)], [(answer, None)])
        return answer

    def _fail_queued(self, message: str) -> None:
        queued = self._queued
        self._outgoing, self._queued = [], []
        _fail((answer for answer, _ in queued), redis.exceptions.ConnectionError(message))


def _fail(answers: Iterable[asyncio.Future[Any]], error: Exception) -> None:
    """`error` for every call in `answers` still waiting (a cancelled caller has gone)."""
    for answer in answers:
        if not answer.done():
            answer.set_exception(error)


def _pack(command: tuple[Arg, ...]) -> bytes:
    # hiredis's stub declares a one-element tuple; it takes any number of arguments
    packed: bytes = hiredis.pack_command(command)  # type: ignore[arg-type]
    return packed
