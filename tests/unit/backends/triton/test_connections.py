"""`ConnectionPool` against a scripted HTTP/1.1 server on loopback (the boundary): reuse,
closing, failures, cancellation and the connection limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httptools
import pytest

from devstack.ports import free_port
from gateway.backends.triton.connections import ConnectionPool, NoAnswer, RequestNotSent


class ScriptedServer:
    """Answers by path: /ok echoes the body, /close also closes, /hangup closes without
    an answer, /garbage is not HTTP, /slow answers after 0.3 s. Records what it sees."""

    def __init__(self) -> None:
        self.requests: list[tuple[bytes, bytes]] = []  # (head, body)
        self.connections = 0
        self.open = 0
        self.most_open = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            while await self._answer(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open -= 1
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        body = await reader.readexactly(length)
        self.requests.append((head, body))
        path = head.split(b" ")[1]
        if path == b"/hangup":
            return False
        if path == b"/garbage":
            writer.write(b"nonsense\r\n\r\n")
            await writer.drain()
            return False
        if path == b"/slow":
            await asyncio.sleep(0.3)
        close = path == b"/close"
        writer.write(
            b"HTTP/1.1 200 OK\r\nX-Echo: yes\r\nContent-Length: %d\r\n%s\r\n%s"
            % (len(body), b"Connection: close\r\n" if close else b"", body)
        )
        await writer.drain()
        return not close


@asynccontextmanager
async def serving(host: str = "127.0.0.1") -> AsyncIterator[tuple[ScriptedServer, ConnectionPool]]:
    script = ScriptedServer()
    server = await asyncio.start_server(script.handle, host, 0)
    port = server.sockets[0].getsockname()[1]
    pool = ConnectionPool(host, port, max_connections=2, idle_timeout_s=0.2)
    try:
        yield script, pool
    finally:
        pool.close()
        server.close()
        await server.wait_closed()


def run(scenario: Callable[[ScriptedServer, ConnectionPool], Awaitable[None]]) -> None:
    async def main() -> None:
        async with serving() as (script, pool):
            await scenario(script, pool)

    asyncio.run(main())


def test_calls_reuse_one_connection_and_send_what_they_say() -> None:
    async def scenario(script: ScriptedServer, pool: ConnectionPool) -> None:
        for n in range(3):
            response = await pool.post("/ok", {"X-Call": str(n)}, b"body %d" % n)
            assert (response.status, response.body) == (200, b"body %d" % n)
            assert response.headers[b"x-echo"] == b"yes"
        assert script.connections == 1
        head, body = script.requests[0]
        assert head.startswith(b"POST /ok HTTP/1.1\r\nHost: 127.0.0.1:")
        assert b"\r\nX-Call: 0\r\n" in head and b"\r\nContent-Length: 6\r\n" in head
        assert body == b"body 0"

    run(scenario)


def test_an_ipv6_host_header_is_bracketed() -> None:
    async def main() -> None:
        async with serving("::1") as (script, pool):
            assert (await pool.post("/ok", {}, b"six")).body == b"six"
            head, _ = script.requests[0]
            assert b"\r\nHost: [::1]:" in head

    asyncio.run(main())


def test_an_answer_that_closes_is_not_reused() -> None:
    async def scenario(script: ScriptedServer, pool: ConnectionPool) -> None:
        assert (await pool.post("/close", {}, b"a")).body == b"a"
        assert (await pool.post("/ok", {}, b"b")).body == b"b"
        assert script.connections == 2

    run(scenario)


def test_failures_raise_and_leave_the_pool_usable() -> None:
    async def scenario(script: ScriptedServer, pool: ConnectionPool) -> None:
        with pytest.raises(NoAnswer):  # written, then closed with no answer
            await pool.post("/hangup", {}, b"")
        with pytest.raises(httptools.HttpParserError):
            await pool.post("/garbage", {}, b"")
        assert (await pool.post("/ok", {}, b"fine")).body == b"fine"
        assert script.connections == 3

    run(scenario)


def test_a_refused_connection_is_an_os_error_that_says_nothing_was_sent() -> None:
    async def main() -> None:
        pool = ConnectionPool("127.0.0.1", free_port(), max_connections=1)
        with pytest.raises(RequestNotSent) as refused:
            await pool.post("/ok", {}, b"")
        assert isinstance(refused.value, OSError)
        assert isinstance(refused.value.__cause__, ConnectionRefusedError)

    asyncio.run(main())


def test_a_cancelled_call_closes_its_connection() -> None:
    async def scenario(script: ScriptedServer, pool: ConnectionPool) -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await pool.post("/slow", {}, b"late")
        # its late answer must not become the next call's
        assert (await pool.post("/ok", {}, b"next")).body == b"next"
        assert script.connections == 2

    run(scenario)


def test_calls_beyond_the_limit_wait_for_a_connection() -> None:
    async def scenario(script: ScriptedServer, pool: ConnectionPool) -> None:
        bodies = [b"%d" % n for n in range(5)]
        answers = await asyncio.gather(*(pool.post("/slow", {}, body) for body in bodies))
        assert [a.body for a in answers] == bodies
        assert script.most_open == 2 and script.connections == 2

    run(scenario)


def test_connections_idle_too_long_are_not_reused() -> None:
    async def scenario(script: ScriptedServer, pool: ConnectionPool) -> None:
        await pool.post("/ok", {}, b"")
        await asyncio.sleep(0.3)  # past idle_timeout_s
        await pool.post("/ok", {}, b"")
        assert script.connections == 2

    run(scenario)
