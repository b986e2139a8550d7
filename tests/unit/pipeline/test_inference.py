"""The inference pipeline, whatever the front: capacity, access, the key's share, the data
plane, the answer, shadowing, and what each failure answers (Triton, the cache's Redis,
rate limits and shadows faked at their boundaries; keys, capacity, catalog, cache and
data plane real)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.errors import ClientDisconnected, GatewayError
from gateway.observability.requests import RequestInfo
from gateway.pipeline.access import Grant
from gateway.pipeline.dataplane import Answer, V2Request
from gateway.pipeline.inference import SpanAttributes
from gateway.protocol.headers import Headers
from tests.support.pipeline import MODEL, Harness, harness, label_of, request_body


@dataclass
class FakeCall:
    """A front at the boundary: what it was asked to send, in order."""

    model: str
    version: str
    headers: Headers
    body_bytes: bytes = field(default_factory=lambda: request_body(1.0, 2.0))
    disconnect: bool = False
    info: RequestInfo = field(default_factory=RequestInfo)
    span_name: str = "test"
    span_attributes: SpanAttributes = field(default_factory=dict)
    sent: list[str] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    errors: list[GatewayError] = field(default_factory=list)
    bodies_read: int = 0

    def caller_context(self) -> None:
        return None

    def status_attribute(self, status: int) -> tuple[str, int]:
        return "status", status

    async def request(self) -> V2Request:
        self.bodies_read += 1
        if self.disconnect:
            raise ClientDisconnected
        return V2Request(self.body_bytes, None)

    async def respond(self, answer: Answer, grant: Grant) -> None:
        self.sent.append("answer")
        self.answers.append(answer)

    async def fail(self, error: GatewayError) -> None:
        self.sent.append(f"error {error.status}")
        self.errors.append(error)


async def key_for(h: Harness, models: tuple[str, ...] = (MODEL,)) -> Headers:
    issued = await h.keys.create("team", models=list(models))
    return [(b"authorization", f"Bearer {issued.key}".encode())]


def run(repository: Path, scenario):  # type: ignore[no-untyped-def]
    async def main() -> None:
        await scenario(await harness(repository))

    asyncio.run(main())


def test_a_request_is_answered_then_shadowed_and_its_info_filled(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        first = FakeCall(MODEL, "", await key_for(h))
        assert await h.pipeline.serve(first) == 200
        (answer,) = first.answers
        assert label_of(answer.response.body) == 3  # FakeTriton: the row's sum
        assert (answer.outcome.value, answer.version) == ("miss", "2")  # the highest ready
        assert h.shadows.submitted == [None]  # after the answer; no split names a shadow
        info = first.info
        assert (info.model, info.version, info.cache) == (MODEL, "2", "miss")
        assert info.key_id is not None
        again = FakeCall(MODEL, "", await key_for(h))
        assert await h.pipeline.serve(again) == 200
        assert again.answers[0].outcome.value == "hit" and len(h.triton.calls) == 1
        assert h.metrics.in_flight._value.get() == 0 and h.capacity.in_flight == 0

    run(tmp_path, scenario)


@pytest.mark.parametrize(
    ("headers", "status"),
    [([], 401), ([(b"authorization", b"Bearer gwk_not_a_key")], 401)],
)
def test_no_usable_key_is_refused_before_the_body_is_read(
    tmp_path: Path, headers: Headers, status: int
) -> None:
    async def scenario(h: Harness) -> None:
        call = FakeCall(MODEL, "", headers)
        assert await h.pipeline.serve(call) == status
        assert call.sent == [f"error {status}"] and call.bodies_read == 0
        assert h.triton.calls == []

    run(tmp_path, scenario)


def test_a_key_without_the_model_in_scope_gets_403(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        call = FakeCall(MODEL, "", await key_for(h, models=("other",)))
        assert await h.pipeline.serve(call) == 403
        assert "may not use model 'm'" in call.errors[0].message and call.bodies_read == 0

    run(tmp_path, scenario)


def test_a_malformed_version_is_400_before_anything_else(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        call = FakeCall(MODEL, "x1", [])
        assert await h.pipeline.serve(call) == 400
        assert "positive integer" in call.errors[0].message and call.bodies_read == 0

    run(tmp_path, scenario)


def test_a_full_worker_sheds_and_a_key_over_its_share_gets_429(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        headers = await key_for(h)
        h.triton.hold()
        held = [asyncio.ensure_future(h.pipeline.serve(FakeCall(MODEL, "1", headers)))]
        held.append(asyncio.ensure_future(h.pipeline.serve(FakeCall(MODEL, "2", headers))))
        await asyncio.sleep(0.01)
        over_share = FakeCall(MODEL, "1", headers)
        assert await h.pipeline.serve(over_share) == 429  # per_key=2
        others = await key_for(h)
        h.capacity.in_flight = h.capacity.limit  # the worker's other slots taken meanwhile
        shed = FakeCall(MODEL, "1", others)
        assert await h.pipeline.serve(shed) == 503
        assert shed.errors[0].headers()["Retry-After"] == "1"
        assert h.metrics.shed._value.get() == 1
        h.capacity.in_flight -= h.capacity.limit - 2
        h.triton.release()
        assert await asyncio.gather(*held) == [200, 200]

    run(tmp_path, scenario)


def test_a_client_gone_before_its_body_gets_nothing(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        call = FakeCall(MODEL, "", await key_for(h), disconnect=True)
        assert await h.pipeline.serve(call) == 499
        assert call.sent == [] and h.triton.calls == []
        assert h.capacity.in_flight == 0

    run(tmp_path, scenario)


def test_an_unexpected_failure_is_a_logged_500_naming_only_its_type(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(h: Harness) -> None:
        h.triton.failure = RuntimeError("secret detail")
        call = FakeCall(MODEL, "", await key_for(h))
        assert await h.pipeline.serve(call) == 500
        assert call.errors[0].message == "internal error: RuntimeError"
        assert h.shadows.submitted == []  # no answer: nothing to shadow

    run(tmp_path, scenario)
    assert "inference request failed unexpectedly" in caplog.text
