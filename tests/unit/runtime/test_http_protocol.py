"""CoalescingTransport: a response's head and body leave in one write: at once when the
worker serves nothing else, at the end of the event-loop turn when it is busy; a write left
alone leaves when the turn ends."""

from __future__ import annotations

import asyncio

from gateway.runtime.http_protocol import CoalescingTransport


class RecordingTransport(asyncio.Transport):
    """A transport at the boundary: records what reaches the socket."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 1234) if name == "peername" else default


def idle() -> bool:
    return False


def busy() -> bool:
    return True


def test_a_responses_head_and_body_leave_in_one_write() -> None:
    async def scenario() -> list[bytes]:
        raw = RecordingTransport()
        transport = CoalescingTransport(raw, asyncio.get_running_loop(), idle)
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        assert raw.writes == []  # the head waits for its body
        assert transport.get_write_buffer_size() == 38
        transport.write(memoryview(b"{}"))
        assert len(raw.writes) == 1  # sent at once, not a loop iteration later
        transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await asyncio.sleep(0)  # alone: sent when the turn ends
        return raw.writes

    assert asyncio.run(scenario()) == [
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}",
        b"HTTP/1.1 100 Continue\r\n\r\n",
    ]


def test_a_busy_worker_sends_when_the_turn_ends() -> None:
    async def scenario() -> None:
        raw = RecordingTransport()
        transport = CoalescingTransport(raw, asyncio.get_running_loop(), busy)
        transport.write(b"head ")
        transport.write(b"body")
        assert raw.writes == []  # the other requests' work of this turn goes first
        await asyncio.sleep(0)
        assert raw.writes == [b"head body"]

    asyncio.run(scenario())


def test_close_sends_what_is_kept_first_and_abort_drops_it() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        raw = RecordingTransport()
        transport = CoalescingTransport(raw, loop, idle)
        transport.write(b"408 answer")
        transport.close()
        assert raw.writes == [b"408 answer"] and raw.closed
        await asyncio.sleep(0)  # the scheduled flush finds nothing more to send
        assert raw.writes == [b"408 answer"]

        raw = RecordingTransport()
        transport = CoalescingTransport(raw, loop, idle)
        transport.write(b"dropped")
        transport.abort()
        await asyncio.sleep(0)
        assert raw.writes == [] and raw.aborted

    asyncio.run(scenario())


def test_nothing_is_written_to_a_transport_closed_meanwhile() -> None:
    async def scenario() -> None:
        raw = RecordingTransport()
        transport = CoalescingTransport(raw, asyncio.get_running_loop(), busy)
        transport.write(b"late")
        raw.close()  # the client went away
        await asyncio.sleep(0)
        assert raw.writes == []
        assert transport.is_closing()  # the rest is the real transport's
        assert transport.get_extra_info("peername") == ("127.0.0.1", 1234)

    asyncio.run(scenario())
