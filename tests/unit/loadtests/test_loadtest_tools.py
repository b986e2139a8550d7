"""The benchmark's own tools: wrk output parsing, the median run, and the OTLP endpoints."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from loadtests.bench import stage_label
from loadtests.kit.otlp_sink import OtlpReceiver, OtlpSink
from loadtests.kit.runs import median_run
from loadtests.kit.wrk import WrkResult, parse
from loadtests.step_summary import render, save, summarise

WRK_OUTPUT = """\
Running 3s test @ http://127.0.0.1:8000/v2/models/m/infer
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.41ms    1.20ms  21.00ms   90.00%
    Req/Sec     4.70k   300.00     5.10k    70.00%
  Latency Distribution
     50%    3.20ms
     75%    3.90ms
     90%    4.50ms
     99%  850.00us
  14100 requests in 3.00s, 4.10MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:   4700.00
Transfer/sec:      1.37MB
"""


def test_wrk_output_is_parsed_with_units_and_all_errors() -> None:
    result = parse(WRK_OUTPUT)
    assert result == WrkResult(
        requests_per_s=4700.0, p50_ms=3.2, p99_ms=0.85, requests=14100, errors=10
    )


def test_unexpected_wrk_output_is_an_error_that_shows_it() -> None:
    with pytest.raises(ValueError, match="unexpected wrk output"):
        parse("wrk: connection refused")


def test_the_median_run_is_kept_with_its_own_latencies() -> None:
    runs = [WrkResult(rate, rate / 100, rate / 10, int(rate), 0) for rate in (300.0, 100.0, 200.0)]
    assert median_run(runs) == runs[2]
    assert median_run(runs[:2]).requests_per_s == 100.0  # an even count keeps the lower


def _span(name: str, milliseconds: float, **attributes: str) -> Span:
    return Span(
        name=name,
        start_time_unix_nano=1_000_000,
        end_time_unix_nano=1_000_000 + int(milliseconds * 1e6),
        attributes=[KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attributes.items()],
    )


REDIS_RESULT = {"gateway.cache.tier": "redis", "gateway.cache.entry": "result"}


def test_the_receiver_keeps_span_durations_labelled_by_name_and_cache_tier() -> None:
    spans = [
        _span("POST /v2/models/{model}/infer", 4.0),
        _span("triton.infer", 2.5),
        _span("cache.lookup", 0.5, **REDIS_RESULT),
    ]
    export = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])]
    )
    with OtlpReceiver() as receiver:
        answer = httpx.post(receiver.url, content=export.SerializeToString())
        assert answer.status_code == 200
        assert {stage_label(s): s.duration_ms for s in receiver.received()} == {
            "POST /v2/models/{model}/infer": 4.0,
            "triton.infer": 2.5,
            "cache.lookup (redis, result)": 0.5,
        }
        assert receiver.requests == 1
        receiver.clear()
        assert not receiver.received()


def test_the_sink_counts_exports_and_keeps_nothing() -> None:
    with OtlpSink() as sink:
        answer = httpx.post(sink.url, content=b"\x0a\x00")
        assert answer.status_code == 200
        assert (sink.requests, sink.bytes) == (1, 2)


def test_step_summary_finds_where_throughput_stops_following_the_load(tmp_path: Path) -> None:
    history = tmp_path / "run_stats_history.csv"
    header = "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,95%,99%\n"
    rows = []
    for users, rps, p50 in ((0, 0, 0), (10, 100, 2), (20, 199, 3), (30, 205, 9)):
        for second in range(6):
            noisy = rps if second >= 2 else rps / 2  # the rolling window still settling
            rows.append(f"{second},{users},,Aggregated,{noisy},0.0,{p50},{p50 * 2},{p50 * 3}\n")
            rows.append(f"{second},{users},POST,infer x,1,0.0,1,1,1\n")  # not aggregated
    history.write_text(header + "".join(rows))
    steps = summarise(history, user_rps=10)
    assert [(s.users, s.offered_rps, s.achieved_rps, s.p50_ms) for s in steps] == [
        (10, 100, 100, 2),
        (20, 200, 199, 3),
        (30, 300, 205, 9),
    ]
    assert [s.saturated for s in steps] == [False, False, True]
    table = render(steps)
    assert table.splitlines()[-1] == "saturation from 30 users (205 requests/s)"
    save(steps, tmp_path / "steps.csv")
    assert (tmp_path / "steps.csv").read_text().splitlines()[0].startswith("users,offered_rps")
