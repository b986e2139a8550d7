"""deploy/ci/release_model.py's decisions on given figures: a fake gateway at the HTTP
boundary (the admin API and /metrics) records what the release asked for."""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.data import ROOT


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "release_model", ROOT / "deploy" / "ci" / "release_model.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["release_model"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


release_model = _load()
FILE = b"onnx bytes of the candidate"


class FakeGateway:
    """The admin API and /metrics of a gateway serving version 1 of `m`; each /metrics
    reading adds one step of traffic: `per_step` figures per version."""

    def __init__(self, per_step: dict[str, Any], gate_fails: bool = False) -> None:
        self.per_step = per_step
        self.gate_fails = gate_fails
        self.versions = [{"version": "1", "state": "READY", "artifact": "old"}]
        self.traffic: dict[str, Any] = {"weights": {"1": 100}, "sticky": True, "serving": "1"}
        self.calls: list[tuple[str, str, Any]] = []
        self.readings = 0

    def call(self, method: str, path: str, body: Any = None, data: bytes | None = None) -> Any:
        self.calls.append((method, path, body))
        if method == "POST" and path.endswith("/versions"):
            assert data is not None
            version = str(len(self.versions) + 1)
            digest = hashlib.sha256(data).hexdigest()
            self.versions.append({"version": version, "state": "READY", "artifact": digest})
            return {"version": version}
        if method == "PUT":
            self.traffic = {**body, "serving": self.traffic["serving"]}
            return {}
        if method == "POST" and path.endswith("/promote"):
            if self.gate_fails:
                raise release_model.ReleaseFailed("POST promote: 409 the quality gate failed")
            self.traffic = {"weights": {body["version"]: 100}, "serving": body["version"]}
            return {"quality_gate": {"result": "passed"}}
        raise AssertionError(f"unexpected call {method} {path}")

    def model(self, name: str) -> dict[str, Any]:
        return {"name": name, "versions": self.versions, "traffic": self.traffic}

    def figures(self, model: str) -> dict[str, Any]:
        self.readings += 1
        found = {}
        for version, (requests, errors, buckets) in self.per_step.items():
            n = self.readings
            scaled = {le: count * n for le, count in buckets.items()}
            found[version] = release_model.Figures(requests * n, errors * n, scaled)
        return found


def steady(requests: float, errors: float, fast: float, slow: float) -> tuple[Any, ...]:
    """A step's figures: `fast` requests within 5 ms, `slow` ones between 50 and 100 ms."""
    total = fast + slow
    return (requests, errors, {0.005: fast, 0.05: fast, 0.1: total, float("inf"): total})


def release(
    gateway: FakeGateway, tmp_path: Path, *options: str
) -> tuple[int, list[str], FakeGateway]:
    source = tmp_path / "model.onnx"
    source.write_bytes(FILE)
    args = release_model.parse(["m", str(source), "--step-s", "0", *options])
    run = release_model.Release(gateway, args)
    return run.run(), run.lines, gateway


def puts(gateway: FakeGateway) -> list[Any]:
    return [body for method, _, body in gateway.calls if method == "PUT"]


HEALTHY = {"1": steady(100, 0, 100, 0), "2": steady(100, 0, 100, 0)}


def test_a_healthy_candidate_goes_through_every_step_and_is_promoted(tmp_path: Path) -> None:
    status, lines, gateway = release(FakeGateway(HEALTHY), tmp_path, "--steps", "5,25,100")
    assert status == 0, lines
    weights = [body["weights"] for body in puts(gateway)]
    assert weights == [{"1": 95, "2": 5}, {"1": 75, "2": 25}]
    assert all(body["sticky"] for body in puts(gateway))  # the split's stickiness is kept
    assert gateway.traffic["weights"] == {"2": 100}
    assert lines[-1] == "DECISION: version 2 promoted; it serves all of m's traffic"
    assert any(line.startswith("step 100 %: v2 100 requests") for line in lines)


def test_errors_above_the_threshold_roll_back_at_that_step(tmp_path: Path) -> None:
    figures = {"1": steady(100, 0, 100, 0), "2": steady(100, 3, 100, 0)}
    status, lines, gateway = release(FakeGateway(figures), tmp_path, "--max-error-rate", "0.02")
    assert status == 1
    assert puts(gateway)[-1]["weights"] == {"1": 100}
    assert "error rate 3.00% is over 2.00% at 5 %" in lines[-1]
    assert not any(path.endswith("/promote") for _, path, _ in gateway.calls)


def test_slow_answers_roll_back_only_past_the_quantile(tmp_path: Path) -> None:
    # 4 % of the candidate's answers take 50-100 ms against the serving version's 5 ms:
    # within the 5 % a p95 allows, then past the 1 % a p99 allows.
    figures = {"1": steady(100, 0, 100, 0), "2": steady(100, 0, 96, 4)}
    assert release(FakeGateway(figures), tmp_path)[0] == 0
    status, lines, _ = release(FakeGateway(figures), tmp_path, "--latency-quantile", "0.99")
    assert status == 1
    assert "over 1% of version 2's requests took longer than 2x version 1's p99" in lines[-1]


def test_too_few_answers_leave_latency_unjudged(tmp_path: Path) -> None:
    figures = {"1": steady(100, 0, 100, 0), "2": steady(10, 0, 5, 5)}
    status, lines, _ = release(FakeGateway(figures), tmp_path)
    assert status == 0
    assert "  latency not judged: fewer than 20 requests answered by Triton" in lines


def test_a_refusing_quality_gate_rolls_back(tmp_path: Path) -> None:
    status, lines, gateway = release(FakeGateway(HEALTHY, gate_fails=True), tmp_path)
    assert status == 1
    assert gateway.traffic["weights"] == {"1": 100}
    assert lines[-1].startswith("DECISION: rolled back to version 1: POST promote: 409")


def test_blue_green_switches_at_once_and_back_on_a_failure(tmp_path: Path) -> None:
    status, _, gateway = release(FakeGateway(HEALTHY), tmp_path, "--blue-green")
    assert status == 0 and puts(gateway) == [] and gateway.traffic["weights"] == {"2": 100}
    failing = {"1": steady(100, 0, 100, 0), "2": steady(100, 50, 100, 0)}
    status, lines, gateway = release(FakeGateway(failing), tmp_path, "--blue-green")
    assert status == 1 and puts(gateway)[-1]["weights"] == {"1": 100}
    assert "at 100 %" in lines[-1]


def test_a_rerun_reuses_the_published_file_and_a_finished_release_does_nothing(
    tmp_path: Path,
) -> None:
    gateway = FakeGateway(HEALTHY)
    gateway.versions.append(
        {"version": "2", "state": "READY", "artifact": hashlib.sha256(FILE).hexdigest()}
    )
    gateway.traffic = {"weights": {"1": 75, "2": 25}, "sticky": False, "serving": "1"}
    status, lines, _ = release(gateway, tmp_path)  # crashed at 25 %: on from there
    assert status == 0 and "version 2 is this file already: reused" in lines
    assert [v["version"] for v in gateway.versions] == ["1", "2"]
    status, lines, _ = release(gateway, tmp_path)
    assert status == 0 and "nothing to do" in lines[-1]


def test_steps_must_rise_within_0_and_100() -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        release_model._steps("25,5")
    with pytest.raises(argparse.ArgumentTypeError):
        release_model._steps("0,50")
    assert release_model._steps("5,25,100") == [5, 25, 100]


def test_metrics_are_read_per_version_and_latency_from_triton_answers_only() -> None:
    text = "\n".join(
        [
            'gateway_inference_requests_total{cache="hit",model="m",protocol="http",'
            'status="200",version="1"} 7.0',
            'gateway_inference_requests_total{cache="miss",model="m",protocol="http",'
            'status="503",version="1"} 2.0',
            'gateway_inference_requests_total{cache="miss",model="other",protocol="http",'
            'status="200",version="1"} 99.0',
            'gateway_inference_duration_seconds_bucket{cache="miss",le="0.01",model="m",'
            'version="1"} 2.0',
            'gateway_inference_duration_seconds_bucket{cache="hit",le="0.01",model="m",'
            'version="1"} 7.0',
        ]
    )

    class Metrics(release_model.Gateway):  # type: ignore[misc,name-defined]
        def metrics_text(self) -> str:
            return text

    figures = Metrics("http://gateway", "key").figures("m")
    assert figures["1"].requests == 9 and figures["1"].errors == 2
    assert figures["1"].buckets == {0.01: 2.0}
