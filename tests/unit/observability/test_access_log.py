"""AccessLog: whole JSON lines, written together within the flush interval, in writes no
bigger than PIPE_BUF where lines allow."""

from __future__ import annotations

import asyncio
import io
import select

import orjson

from gateway.observability.access_log import AccessLog


class Writes(io.BytesIO):
    """A stream that remembers each write."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[bytes] = []

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.calls.append(bytes(data))
        return super().write(data)


def fields(n: int, path: str = "/v2/models/m/infer") -> dict[str, object]:
    return {"event": "access", "method": "POST", "path": path, "status": 200, "n": n}


def test_lines_of_a_burst_leave_in_one_write_within_the_interval() -> None:
    async def scenario() -> Writes:
        stream = Writes()
        log = AccessLog(stream, flush_s=0.05)
        for n in range(3):
            log.write(fields(n))
        assert stream.calls == []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not stream.calls and loop.time() < deadline:
            await asyncio.sleep(0.01)
        return stream

    stream = asyncio.run(scenario())
    assert len(stream.calls) == 1
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["n"] for line in lines] == [0, 1, 2]
    first = lines[0]
    assert first["logger"] == "gateway.access" and first["level"] == "INFO"
    assert first["message"] == "POST /v2/models/m/infer 200"
    assert first["time"].endswith("+00:00") and len(first["time"]) == 29


def test_no_write_is_bigger_than_pipe_buf_and_flush_writes_the_rest() -> None:
    async def scenario() -> Writes:
        stream = Writes()
        log = AccessLog(stream, flush_s=60)  # only size and flush() write here
        for n in range(100):
            log.write(fields(n, path="/v2/models/" + "m" * 100 + "/infer"))
        log.flush()
        return stream

    stream = asyncio.run(scenario())
    assert len(stream.calls) > 1
    assert all(len(call) <= select.PIPE_BUF for call in stream.calls)
    assert all(call.endswith(b"\n") for call in stream.calls)  # whole lines only
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["n"] for line in lines] == list(range(100))


def test_each_line_at_once_without_a_loop_or_an_interval() -> None:
    stream = Writes()
    AccessLog(stream).write(fields(1))  # no event loop: nothing could flush later
    assert len(stream.calls) == 1

    async def scenario() -> None:
        log = AccessLog(stream, flush_s=0)
        log.write(fields(2))
        log.write(fields(3))

    asyncio.run(scenario())
    assert len(stream.calls) == 3
