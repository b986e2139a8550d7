"""Several Tritons as one: routing by READY versions, least outstanding of two, sticky
sequences, one retry when a Triton did not answer, outlier ejection, merged answers. The
connection pools are faked at the boundary (the integration tests run real Tritons)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import httpx
import orjson
import pytest

from gateway.backends.triton import TritonClient
from gateway.backends.triton.balancing import FAILURES_IN_A_ROW, Outliers, choose, stick
from gateway.backends.triton.connections import NoAnswer, RequestNotSent, Response
from gateway.backends.triton.discovery import Discovery
from gateway.backends.triton.endpoint import Address, Endpoint
from gateway.backends.triton.merging import merge_indexes, merge_statistics, pending_requests
from gateway.backends.triton.model_deadlines import ModelDeadlines
from gateway.errors import BadRequest, NotFound, TritonUnavailable, UpstreamError
from gateway.observability.metrics import Metrics
from gateway.protocol import decode_infer_request
from gateway.protocol.types import InferRequest
from resilience import CircuitBreaker

URLS = ["http://triton-a:8000", "http://triton-b:8000", "http://triton-c:8000"]


def answer(version: str = "1") -> Response:
    header = orjson.dumps(
        {
            "model_name": "m",
            "model_version": version,
            "outputs": [
                {"name": "y", "datatype": "FP32", "shape": [1],
                 "parameters": {"binary_data_size": 4}}
            ],
        }
    )  # fmt: skip
    return Response(200, {b"inference-header-content-length": str(len(header)).encode()},
                    header + b"\0\0\0\0")  # fmt: skip


class FakePool:
    """One Triton's connections: answers, or fails, as scripted."""

    def __init__(self, outcome: str = "ok") -> None:
        self.outcome = outcome
        self.calls = 0

    async def post(self, path: str, headers: dict[str, str], body: bytes) -> Response:
        self.calls += 1
        await asyncio.sleep(0)
        if self.outcome == "refused":
            raise RequestNotSent("refused")
        if self.outcome == "hangup":
            raise NoAnswer("closed without answering")
        if self.outcome == "500":
            return Response(500, {}, b'{"error": "boom"}')
        return answer()

    def close(self) -> None:
        pass


def client_with(*outcomes: str, **options: Any) -> tuple[TritonClient, list[FakePool]]:
    client = TritonClient(
        URLS[: len(outcomes)],
        deadlines=ModelDeadlines(30, 2, 10),
        control_timeout_s=1,
        retry_after_s=1,
        metrics=Metrics(),
        seed=7,
        **options,
    )
    pools = [FakePool(outcome) for outcome in outcomes]
    for endpoint, pool in zip(client.endpoints, pools, strict=True):
        endpoint.pool = pool  # type: ignore[assignment]
        endpoint.ready_versions = frozenset({("m", "1")})
    return client, pools


def request(sequence_id: int | None = None) -> InferRequest:
    document: dict[str, Any] = {
        "inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]
    }
    if sequence_id is not None:
        document["parameters"] = {"sequence_id": sequence_id}
    return decode_infer_request("m", "1", orjson.dumps(document), None)


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_a_call_that_reached_no_triton_is_tried_once_on_another() -> None:
    async def scenario() -> None:
        for failure in ("refused", "hangup"):
            client, (broken, healthy) = client_with(failure, "ok")
            client.endpoints[1].ready_versions = frozenset({("m", "1")})
            for _ in range(10):
                assert (await client.infer(request())).version == "1"
            assert broken.calls >= 1 and healthy.calls == 10
            assert client._metrics.triton_retries._value.get() == broken.calls

    run(scenario())


def test_no_retry_for_sequences_for_answers_or_past_one_retry() -> None:
    async def scenario() -> None:
        client, _ = client_with("hangup", "ok")
        with pytest.raises(TritonUnavailable):  # a sequence's state lives in one Triton
            for sequence in range(20):
                await client.infer(request(sequence_id=sequence + 1))
        client, (failing, other) = client_with("500", "500")
        with pytest.raises(UpstreamError):  # Triton answered: its answer stands
            await client.infer(request())
        assert failing.calls + other.calls == 1
        client, pools = client_with("refused", "refused", "refused")
        with pytest.raises(TritonUnavailable):
            await client.infer(request())
        assert sum(pool.calls for pool in pools) == 2  # the call and one retry

    run(scenario())


def test_calls_go_only_to_tritons_with_the_version_ready() -> None:
    async def scenario() -> None:
        client, (a, b) = client_with("ok", "ok")
        client.endpoints[0].ready_versions = frozenset({("m", "2")})
        for _ in range(20):
            await client.infer(request())
        assert (a.calls, b.calls) == (0, 20)
        # No Triton has the version: one of them answers for itself (404 in its words).
        client.endpoints[1].ready_versions = frozenset()
        await client.infer(request())
        assert a.calls + b.calls == 21

    run(scenario())


def test_sequences_stick_to_one_triton_and_others_spread() -> None:
    async def scenario() -> None:
        client, pools = client_with("ok", "ok", "ok")
        for _ in range(10):
            await client.infer(request(sequence_id=42))
        assert sorted(pool.calls for pool in pools) == [0, 0, 10]
        for pool in pools:
            pool.calls = 0
        for _ in range(300):
            await client.infer(request())
        assert all(pool.calls > 60 for pool in pools), [p.calls for p in pools]

    run(scenario())


def endpoints(count: int) -> list[Endpoint]:
    return [Endpoint(Address(url), 1, CircuitBreaker(url)) for url in URLS[:count]]


def test_least_outstanding_of_two_prefers_the_idle_triton() -> None:
    busy, idle = endpoints(2)
    busy.pending = {"m": 10}  # Triton's own queue counts
    rng = random.Random(1)  # noqa: S311 - the balancer's choice, not security
    assert Counter(choose([busy, idle], "m", rng).url for _ in range(50)) == {idle.url: 50}
    assert choose([busy, idle], "other", rng) in (busy, idle)
    many = endpoints(3)
    assert len({stick(many, f"s{n}").url for n in range(30)}) == 3  # sequences spread
    assert stick(many, "s1") is stick(list(reversed(many)), "s1")  # and stay put


def test_a_triton_queue_counts_only_other_gateways_calls() -> None:
    (endpoint,) = endpoints(1)
    endpoint.saw_queue({"m": 1, "n": 0}, ours=1)  # the snapshot caught our own call
    assert endpoint.pending == {} and endpoint.load("m") == 0
    endpoint.saw_queue({"m": 3}, ours=1)
    assert endpoint.load("m") == 2


def test_outliers_are_ejected_for_longer_each_time_but_never_the_last() -> None:
    now = [0.0]
    outliers = Outliers(clock=lambda: now[0])
    first, second = endpoints(2)
    for _ in range(FAILURES_IN_A_ROW):
        outliers.failed(first, [first, second], "refused")
    assert outliers.ejected(first)
    for _ in range(FAILURES_IN_A_ROW):
        outliers.failed(second, [first, second], "refused")
    assert not outliers.ejected(second)  # the last one left stays
    first_period = first.ejected_until
    now[0] = first_period + 0.1
    for _ in range(FAILURES_IN_A_ROW):
        outliers.failed(first, [first, second], "refused")
    assert first.ejected_until - now[0] == 2 * first_period  # twice as long
    now[0] = first.ejected_until + 100
    outliers.succeeded(first)
    assert first.ejections == 1 and first.failures_in_a_row == 0


def test_indexes_and_statistics_merge_over_tritons() -> None:
    a = [{"name": "m", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"}]
    b = [{"name": "m", "version": "1", "state": "READY"}, {"name": "n", "version": "2"}]
    assert merge_indexes([a, b]) == [b[0], b[1]]
    stats = [
        {"name": "m", "version": "1", "last_inference": 5, "inference_count": 2,
         "inference_stats": {"success": {"count": 2, "ns": 10}},
         "batch_stats": [{"batch_size": 1, "compute_infer": {"count": 2, "ns": 4}}]},
        {"name": "m", "version": "1", "last_inference": 9, "inference_count": 3,
         "inference_stats": {"success": {"count": 3, "ns": 20}},
         "batch_stats": [{"batch_size": 1, "compute_infer": {"count": 3, "ns": 6}},
                         {"batch_size": 4, "compute_infer": {"count": 1, "ns": 1}}]},
    ]  # fmt: skip
    (merged,) = merge_statistics([[stats[0]], [stats[1]]])
    assert merged["inference_count"] == 5 and merged["last_inference"] == 9
    assert merged["inference_stats"]["success"] == {"count": 5, "ns": 30}
    assert [b["compute_infer"]["count"] for b in merged["batch_stats"]] == [5, 1]


def test_triton_queue_lengths_come_from_its_metrics() -> None:
    text = (
        "# TYPE nv_inference_pending_request_count gauge\n"
        'nv_inference_pending_request_count{model="m",version="1"} 3\n'
        'nv_inference_pending_request_count{model="m",version="2"} 1\n'
        'nv_inference_pending_request_count{model="n",version="1"} 0\n'
    )
    assert pending_requests(text) == {"m": 4, "n": 0}


def test_sources_give_addresses_and_dns_names_resolve_to_one_each() -> None:
    discovery = Discovery(["http://a:8000#metrics=9002", "http://b:8000"], metrics_port=8002)
    assert discovery.static() == [
        Address("http://a:8000", "http://a:9002/metrics"),
        Address("http://b:8000", "http://b:8002/metrics"),
    ]
    assert run(discovery.resolve()) is None  # nothing to resolve
    named = Discovery(["dns+http://localhost:8000"], metrics_port=0)
    resolved = run(named.resolve())
    assert Address("http://127.0.0.1:8000") in resolved
    unresolvable = Discovery(["dns+http://no-such-host.invalid:8000"], metrics_port=0)
    assert run(unresolvable.resolve()) == []  # nothing known yet, nothing invented


def test_questions_take_the_answers_there_are_and_loads_need_every_triton() -> None:
    async def scenario() -> None:
        client, _ = client_with("ok", "ok")

        def triton(has_model: bool) -> httpx.MockTransport:
            def handle(request: httpx.Request) -> httpx.Response:
                if request.url.path.endswith("/load"):
                    return httpx.Response(200 if has_model else 400, json={"error": "failed"})
                if not has_model:
                    return httpx.Response(404, json={"error": "unknown model: 'm'"})
                stats = [{"name": "m", "version": "1", "inference_count": 4}]
                return httpx.Response(200, json={"model_stats": stats})

            return httpx.MockTransport(handle)

        for endpoint, has_model in zip(client.endpoints, (False, True), strict=True):
            endpoint.http = httpx.AsyncClient(base_url=endpoint.url, transport=triton(has_model))
        assert await client.control.model_statistics("m") == [
            {"name": "m", "version": "1", "inference_count": 4}
        ]
        with pytest.raises(BadRequest):  # one Triton could not load it: the change fails
            await client.control.load_model("m")
        client.endpoints[1].http = client.endpoints[0].http
        with pytest.raises(NotFound):  # no Triton answered: the first failure
            await client.control.model_statistics("m")
        await client.close()

    run(scenario())
