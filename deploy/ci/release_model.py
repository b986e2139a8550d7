"""Release a model version through a running gateway: publish, shadow, canary, promote, or
roll back at the first failed check. Python's standard library only, so any CI image runs it.

    release-model.sh MODEL SOURCE [options]        (SOURCE: FILE.onnx or models:/NAME/V|@ALIAS)

    GATEWAY_URL, GATEWAY_KEY (an admin key)        where and as whom

    1. publish SOURCE as the next version (an identical file already published is reused:
       a re-run after a crash picks up where it was)
    2. shadow: mirror --shadow-percent of the model's requests to it until --shadow-requests
       were compared or --shadow-s passed (skipped with --shadow-requests 0); its answers
       agreeing with the serving version's less than --min-shadow-agreement (0.9, as the
       gateway's quality gate: the share of equal labels, or the mean cosine of embeddings)
       fails the release
    3. canary: --steps (5,25,100 by default) of its share of unversioned traffic, each held
       --step-s; at each step its error rate and latency (the gateway's metrics over the
       step; latency of the requests Triton answered, not of cache hits) against the serving
       version's: an error rate above --max-error-rate, or more of its requests than
       1 - --latency-quantile (0.95: 5 %) slower than --max-latency-ratio times the serving
       version's p95, fails the release (latency is judged when both versions had
       --min-latency-requests answered by Triton in the step)
    4. promote through the quality gate (a gate that fails, fails the release)
    Any failure: traffic back to the serving version, exit 1 with the reason. With
    --blue-green: no canary steps; all traffic at once (the gate first), held --step-s and
    checked, and back at once on a failure.

A re-run after a crash picks up where the release was: the same file (or the same MLflow
version, models:/NAME/V) is not published again, the serving version is still the one the
split records, and a version that already serves everything ends the release at once.

A summary (versions, figures of each step, the decision) goes to stdout, and to the file in
GITHUB_STEP_SUMMARY where a GitHub Actions job sets one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRITON_ANSWERED = ("miss", "bypass")  # cache outcomes whose latency is the model's
SAMPLE = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\} (?P<value>[0-9.eE+-]+|NaN)")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class ReleaseFailed(Exception):
    """A check failed; the message says which and why."""


@dataclass
class Figures:
    """One version's requests over a step: count, server errors, latency buckets."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative count

    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def total(self) -> float:
        return max(self.buckets.values(), default=0.0)

    def quantile_s(self, q: float) -> float | None:
        """The smallest bucket bound that the share `q` of the requests stayed within."""
        total = self.total()
        if total <= 0:
            return None
        for le in sorted(self.buckets):
            if self.buckets[le] >= q * total:
                return le
        return None

    def share_over(self, seconds: float) -> float:
        """The share of requests that took longer than the first bucket bound at or above
        `seconds` (buckets cannot tell finer)."""
        total = self.total()
        bounds = [le for le in self.buckets if le >= seconds]
        if total <= 0 or not bounds:
            return 0.0
        return 1.0 - self.buckets[min(bounds)] / total


class Gateway:
    """The admin API and /metrics of one gateway."""

    def __init__(self, url: str, key: str) -> None:
        if not url.startswith(("http://", "https://")):
            raise ReleaseFailed(f"GATEWAY_URL must be an http:// or https:// URL, not {url!r}")
        self.url = url.rstrip("/")
        self.key = key

    def call(self, method: str, path: str, body: Any = None, data: bytes | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.key}"}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif data is not None:
            headers["Content-Type"] = "application/octet-stream"
        url = self.url + path  # http(s), checked in __init__
        request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=900) as response:  # noqa: S310
                payload = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise ReleaseFailed(f"{method} {path}: {exc.code} {detail}") from exc
        return json.loads(payload) if payload else {}

    def model(self, name: str) -> dict[str, Any]:
        for model in self.call("GET", "/admin/models")["models"]:
            if model["name"] == name:
                return dict(model)
        raise ReleaseFailed(f"the gateway serves no model '{name}'")

    def metrics_text(self) -> str:
        request = urllib.request.Request(self.url + "/metrics")  # noqa: S310 - http(s)
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return str(response.read().decode())

    def figures(self, model: str) -> dict[str, Figures]:
        """Cumulative figures per version, from /metrics."""
        found: dict[str, Figures] = {}
        for line in self.metrics_text().splitlines():
            match = SAMPLE.match(line)
            if match is None:
                continue
            labels = dict(LABEL.findall(match["labels"]))
            if labels.get("model") != model or "version" not in labels:
                continue
            figures = found.setdefault(labels["version"], Figures())
            value = float(match["value"])
            if match["name"] == "gateway_inference_requests_total":
                figures.requests += value
                if labels.get("status", "").startswith("5"):
                    figures.errors += value
            elif (
                match["name"] == "gateway_inference_duration_seconds_bucket"
                and labels.get("cache") in TRITON_ANSWERED
            ):
                le = float("inf") if labels["le"] == "+Inf" else float(labels["le"])
                figures.buckets[le] = figures.buckets.get(le, 0.0) + value
        return found


def over(later: Figures, earlier: Figures) -> Figures:
    """What happened between two readings."""
    return Figures(
        later.requests - earlier.requests,
        later.errors - earlier.errors,
        {le: count - earlier.buckets.get(le, 0.0) for le, count in later.buckets.items()},
    )


@dataclass
class Release:
    gateway: Gateway
    args: argparse.Namespace
    lines: list[str] = field(default_factory=list)
    sticky: bool = False  # the split's stickiness, kept by every change the release makes

    def say(self, line: str) -> None:
        self.lines.append(line)
        print(line, flush=True)

    def run(self) -> int:
        model = self.args.model
        described = self.gateway.model(model)
        serving = self.serving(described)
        self.sticky = bool((described.get("traffic") or {}).get("sticky", False))
        version = self.publish(model)
        self.say(f"release of {model}: version {version} to replace version {serving}")
        if version == serving:
            self.say(f"version {version} already serves all of the traffic: nothing to do")
            return 0
        try:
            self.shadow(model, serving, version)
            if self.args.blue_green:
                self.promote(model, version)
                self.watch(model, serving, version, 100)
            else:
                for percent in self.args.steps:
                    if percent >= 100:
                        break
                    self.split(model, {serving: 100 - percent, version: percent})
                    self.watch(model, serving, version, percent)
                self.promote(model, version)
                if 100 in self.args.steps:
                    self.watch(model, serving, version, 100)
        except ReleaseFailed as exc:
            self.split(model, {serving: 100})
            self.say(f"DECISION: rolled back to version {serving}: {exc}")
            return 1
        self.say(f"DECISION: version {version} promoted; it serves all of {model}'s traffic")
        return 0

    @staticmethod
    def serving(model: dict[str, Any]) -> str:
        traffic = model.get("traffic") or {}
        if traffic.get("serving") and traffic.get("weights", {}).get(traffic["serving"]):
            return str(traffic["serving"])
        weights: dict[str, int] = traffic.get("weights") or {}
        if weights:
            return str(max(weights, key=lambda v: (weights[v], int(v))))
        ready = [v["version"] for v in model["versions"] if v.get("state") == "READY"]
        if not ready:
            raise ReleaseFailed(f"model '{model['name']}' has no ready version")
        return str(max(ready, key=int))

    def publish(self, model: str) -> str:
        source: str = self.args.source
        if source.startswith("models:/"):
            for known in self.gateway.model(model)["versions"]:
                registry = known.get("registry") or {}
                origin = f"models:/{registry.get('registered_model')}/{registry.get('version')}"
                if origin == source and known.get("state") == "READY":
                    self.say(f"version {known['version']} is {source} already: reused")
                    return str(known["version"])
            published = self.gateway.call(
                "POST", f"/admin/models/{model}/versions", body={"from": source}
            )
            return str(published["version"])
        data = Path(source).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        for known in self.gateway.model(model)["versions"]:
            if known.get("artifact") == digest and known.get("state") == "READY":
                self.say(f"version {known['version']} is this file already: reused")
                return str(known["version"])
        published = self.gateway.call("POST", f"/admin/models/{model}/versions", data=data)
        return str(published["version"])

    def split(self, model: str, weights: dict[str, int], **extra: Any) -> None:
        body = {"weights": {v: w for v, w in weights.items() if w > 0}, **extra}
        body["sticky"] = self.sticky
        self.gateway.call("PUT", f"/admin/models/{model}/traffic", body=body)

    def shadow(self, model: str, serving: str, version: str) -> None:
        wanted = self.args.shadow_requests
        if not wanted:
            return
        shadow = {"version": version, "percent": self.args.shadow_percent}
        self.split(model, {serving: 100}, shadow=shadow)
        deadline = time.monotonic() + self.args.shadow_s
        live: dict[str, Any] = {}
        while time.monotonic() < deadline:
            traffic = self.gateway.model(model).get("traffic") or {}
            live = ((traffic.get("shadow") or {}).get("live") or {}).get(serving) or {}
            if live.get("requests", 0) >= wanted:
                break
            time.sleep(1.0)
        self.say(f"shadow: {json.dumps(live or {'requests': 0})}")
        floor = self.args.min_shadow_agreement
        if live.get("rows") and float(live["mean"]) < floor:
            raise ReleaseFailed(
                f"version {version} agreed with version {serving} on {float(live['mean']):.2%} "
                f"({live.get('measure')}) of {live['rows']} mirrored rows; "
                f"--min-shadow-agreement is {floor:.2%}"
            )

    def watch(self, model: str, serving: str, version: str, percent: int) -> None:
        before = self.gateway.figures(model)
        time.sleep(self.args.step_s)
        after = self.gateway.figures(model)
        new = over(after.get(version, Figures()), before.get(version, Figures()))
        old = over(after.get(serving, Figures()), before.get(serving, Figures()))
        q = self.args.latency_quantile
        new_q, old_q = new.quantile_s(q), old.quantile_s(q)
        name = f"p{q * 100:g}"
        self.say(
            f"step {percent} %: v{version} {new.requests:.0f} requests, errors "
            f"{new.error_rate():.2%}, {name} {_ms(new_q)}; v{serving} {old.requests:.0f} "
            f"requests, errors {old.error_rate():.2%}, {name} {_ms(old_q)}"
        )
        if new.error_rate() > self.args.max_error_rate:
            raise ReleaseFailed(
                f"version {version}'s error rate {new.error_rate():.2%} is over "
                f"{self.args.max_error_rate:.2%} at {percent} %"
            )
        enough = self.args.min_latency_requests
        if new.total() < enough or old.total() < enough or old_q is None:
            self.say(f"  latency not judged: fewer than {enough} requests answered by Triton")
            return
        ratio = self.args.max_latency_ratio
        if new.share_over(ratio * old_q) > 1 - q:
            raise ReleaseFailed(
                f"over {1 - q:.0%} of version {version}'s requests took longer than {ratio:g}x "
                f"version {serving}'s {name} ({_ms(old_q)}) at {percent} %"
            )

    def promote(self, model: str, version: str) -> None:
        answer = self.gateway.call(
            "POST", f"/admin/models/{model}/promote", body={"version": version}
        )
        self.say(f"promote: quality gate {json.dumps(answer.get('quality_gate'))}")


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return "over the largest bucket" if seconds == float("inf") else f"<= {seconds * 1000:g} ms"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="release-model.sh",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model")
    parser.add_argument("source", help="FILE.onnx, or models:/NAME/VERSION|@ALIAS")
    parser.add_argument("--shadow-percent", type=float, default=100.0)
    parser.add_argument("--shadow-requests", type=int, default=0)
    parser.add_argument("--shadow-s", type=float, default=300.0)
    parser.add_argument("--min-shadow-agreement", type=float, default=0.9)
    parser.add_argument("--steps", type=_steps, default=[5, 25, 100])
    parser.add_argument("--step-s", type=float, default=60.0)
    parser.add_argument("--max-error-rate", type=float, default=0.01)
    parser.add_argument("--max-latency-ratio", type=float, default=2.0)
    parser.add_argument("--latency-quantile", type=_share, default=0.95)
    parser.add_argument("--min-latency-requests", type=int, default=20)
    parser.add_argument("--blue-green", action="store_true")
    return parser.parse_args(argv)


def _share(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError("a share between 0 and 1, e.g. 0.95")
    return value


def _steps(text: str) -> list[int]:
    steps = [int(part) for part in text.split(",") if part]
    if not steps or any(not 0 < s <= 100 for s in steps) or steps != sorted(steps):
        raise argparse.ArgumentTypeError("steps are rising percentages, e.g. 5,25,100")
    return steps


def main(argv: list[str]) -> int:
    args = parse(argv)
    url, key = os.environ.get("GATEWAY_URL"), os.environ.get("GATEWAY_KEY")
    if not url or not key:
        print("release-model: set GATEWAY_URL and GATEWAY_KEY (an admin key)", file=sys.stderr)
        return 2
    release = Release(Gateway(url, key), args)
    try:
        status = release.run()
    except ReleaseFailed as exc:
        release.say(f"DECISION: nothing changed: {exc}")
        status = 1
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with Path(summary).open("a") as handle:
            handle.write("```\n" + "\n".join(release.lines) + "\n```\n")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
