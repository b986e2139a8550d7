"""Clients that misbehave, with an ordinary key, cost at most their own requests."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest

from devstack import EmbeddedRedis, EmbeddedTriton
from tests.integration.conftest import gateway_settings
from tests.support.admin import create_key, infer_tabular
from tests.support.keys import auth_headers
from tests.support.metrics import value
from tests.support.polling import eventually
from tests.support.server import running_gateway

TABULAR = {
    "inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP32", "data": [0.0] * 30}]
}


def test_made_up_model_names_do_not_grow_metrics(gateway_url: str) -> None:
    _, key = create_key(gateway_url, models=["*"])
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=gateway_url, headers=headers, timeout=30) as client:

        def unknown(n: int) -> int:
            return client.post(f"/v2/models/made_up_{n}/infer", json=TABULAR).status_code

        assert {unknown(n) for n in range(20)} == {404}  # every label set exists now
        before = len(client.get("/metrics").content)
        with ThreadPoolExecutor(8) as pool:
            statuses = set(pool.map(unknown, range(20, 10_020)))
        after = client.get("/metrics").text
    assert statuses == {404}
    assert "made_up" not in after
    assert len(after) - before < 2_000, len(after) - before  # counter digits, not label sets


def test_very_long_names_are_refused_before_any_backend(gateway_url: str) -> None:
    _, key = create_key(gateway_url, models=["*"])
    headers = {"Authorization": f"Bearer {key}"}
    long_name = "m" * 9_000
    for path in (
        f"/v2/models/{long_name}/infer",
        f"/v2/models/{long_name}",
        f"/v2/models/{long_name}/config",
        f"/v2/models/tabular_classifier/versions/{'9' * 30}/infer",
        "/v2/models/tabular_classifier/versions/latest",
    ):
        method = "POST" if path.endswith("/infer") else "GET"
        response = httpx.request(method, f"{gateway_url}{path}", json=TABULAR, headers=headers)
        assert response.status_code == 400, (path[:60], response.text[:200])
        assert len(response.json()["error"]) < 200
    metrics = httpx.get(f"{gateway_url}/metrics").text
    assert value(metrics, "gateway_degraded", dependency="triton") == 0
    ready = httpx.get(f"{gateway_url}/v2/health/ready")
    assert ready.status_code == 200


@pytest.fixture(scope="module")
def strict(triton: EmbeddedTriton, redis_server: EmbeddedRedis) -> Iterator[str]:
    """A gateway with short deadlines for slow clients."""
    settings = gateway_settings(
        triton,
        redis_server,
        header_timeout_s=1.0,
        body_timeout_s=1.0,
        keep_alive_s=2.0,
        access_log=False,
    )
    with running_gateway(settings) as url:
        yield url


def stalled_infer(url: str, key: str) -> socket.socket:
    """A request announcing 1,000 bytes of body and sending 4."""
    host, port = url.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)), timeout=30)
    connection.sendall(
        b"POST /v2/models/tabular_classifier/infer HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer " + key.encode() + b"\r\n"
        b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"in'
    )
    return connection


def answer_then_close(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    connection.close()
    return received


def test_slow_bodies_of_one_key_cost_other_keys_nothing(strict: str) -> None:
    _, slow_key = create_key(strict, models=["tabular_*"])
    _, other_key = create_key(strict, models=["*"])
    stalled = [stalled_infer(strict, slow_key) for _ in range(200)]
    started = time.monotonic()
    with httpx.Client(base_url=strict, timeout=30) as client:
        statuses = [
            client.post(
                "/v2/models/tabular_classifier/infer",
                json=TABULAR,
                headers={"Authorization": f"Bearer {other_key}"},
            ).status_code
            for _ in range(50)
        ]
        assert statuses == [200] * 50  # none shed: the slow key holds at most its share
        assert client.get("/v2/health/ready").status_code == 200
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(answer_then_close, stalled))
    took = time.monotonic() - started
    first_lines = Counter(answer.split(b"\r\n", 1)[0] for answer in answers)
    # 32 held (GATEWAY_MAX_IN_FLIGHT_PER_KEY) until the body deadline, the rest refused
    assert first_lines == {
        b"HTTP/1.1 408 Request Timeout": 32,
        b"HTTP/1.1 429 Too Many Requests": 168,
    }, first_lines
    assert took < 20, took  # every slow connection closed after its deadline


def test_a_body_sent_after_its_headers_is_read_within_its_deadline(strict: str) -> None:
    """Expect: 100-continue: the body leaves only once the gateway asks for it, so it has
    not arrived when the request is served (the path with a body deadline armed)."""
    _, key = create_key(strict, models=["*"])
    body = orjson.dumps(TABULAR)
    host, port = strict.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)), timeout=30)
    connection.sendall(
        b"POST /v2/models/tabular_classifier/infer HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer " + key.encode() + b"\r\nExpect: 100-continue\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    interim = b""
    while b"\r\n\r\n" not in interim:
        interim += connection.recv(65536)
    assert interim.startswith(b"HTTP/1.1 100 Continue"), interim
    connection.sendall(body)
    answer = b""
    while b'"outputs"' not in answer:
        chunk = connection.recv(65536)
        assert chunk, answer  # not closed before the answer
        answer += chunk
    connection.close()
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer[:300]


def test_headers_that_never_finish_are_cut_off(strict: str) -> None:
    host, port = strict.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)), timeout=30)
    connection.sendall(b"POST /v2/models/tabular_classifier/infer HTTP/1.1\r\nHost: x\r\n")
    answer = answer_then_close(connection)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout")
    assert b"headers did not arrive in time" in answer
    idle = socket.create_connection((host, int(port)), timeout=30)  # sends nothing at all
    assert answer_then_close(idle).startswith(b"HTTP/1.1 408")
    # A kept-alive connection: the second request's headers stop half-way.
    kept = socket.create_connection((host, int(port)), timeout=30)
    kept.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
    first = b""
    while b"\r\n\r\n" not in first:
        first += kept.recv(65536)
    assert first.startswith(b"HTTP/1.1 200")
    kept.sendall(b"POST /v2/models/tabular_classifier/infer HTTP/1.1\r\nHost: x\r\n")
    assert b"HTTP/1.1 408 Request Timeout" in answer_then_close(kept)


def test_a_worker_at_capacity_sheds_requests_and_stays_ready(
    triton: EmbeddedTriton, redis_server: EmbeddedRedis
) -> None:
    settings = gateway_settings(
        triton, redis_server, max_in_flight=4, max_in_flight_per_key=0, body_timeout_s=2.0
    )
    with running_gateway(settings) as url:
        _, key = create_key(url, models=["*"])
        stalled = [stalled_infer(url, key) for _ in range(4)]

        def at_capacity() -> bool:
            return value(httpx.get(f"{url}/metrics").text, "gateway_in_flight_requests") == 4

        eventually(at_capacity, timeout_s=10, what="the stalled requests fill the worker")
        shed = infer_tabular(url, auth_headers(key))
        assert shed.status_code == 503 and "at capacity" in shed.json()["error"], shed.text
        # Out of rotation, its load would go to the other replicas, which would follow it.
        assert httpx.get(f"{url}/v2/health/ready").status_code == 200
        for connection in stalled:
            answer_then_close(connection)
        assert infer_tabular(url, auth_headers(key)).status_code == 200


def test_a_revocation_reaches_every_process_at_once(triton: EmbeddedTriton, tmp_path: Path) -> None:
    own_redis = EmbeddedRedis(tmp_path, persistent=False)
    own_redis.start()
    # Keys are remembered for a minute: only a pushed revocation can stop one sooner.
    settings = gateway_settings(
        triton, own_redis, auth_remember_s=60, auth_stale_window_s=300, redis_breaker_reset_s=0.5
    )
    try:
        with running_gateway(settings) as a, running_gateway(settings) as b:
            key_id, revoked = create_key(a, models=["*"])
            _, kept = create_key(a, models=["*"])
            for key in (revoked, kept):
                assert infer_tabular(b, {"Authorization": f"Bearer {key}"}).status_code == 200
            assert httpx.delete(f"{a}/admin/keys/{key_id}", headers=auth_headers()).is_success

            def refused_by_b() -> bool:
                status = infer_tabular(b, {"Authorization": f"Bearer {revoked}"}).status_code
                return status == 401

            eventually(refused_by_b, timeout_s=5, what="process B refuses the revoked key")
            os.kill(own_redis.pid or 0, signal.SIGSTOP)  # Redis hangs
            try:
                hung = infer_tabular(b, {"Authorization": f"Bearer {revoked}"})
                assert hung.status_code in (401, 503), hung.text  # never served
                still = infer_tabular(b, {"Authorization": f"Bearer {kept}"})
                assert still.status_code == 200  # remembered keys ride out the outage
            finally:
                os.kill(own_redis.pid or 0, signal.SIGCONT)
    finally:
        own_redis.stop()
