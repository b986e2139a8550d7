"""Prometheus metrics of one gateway app, on a registry of its own (no module globals).

With several uvicorn workers, `PROMETHEUS_MULTIPROC_DIR` is set before the workers start
(see `devstack.up`): every process then writes its values to files there and `/metrics`
sums them over all processes, whichever worker answers. Gauges report the maximum over
processes (one degraded worker shows as degraded). Exemplars (trace ids on the latency
histograms and counters) appear in the OpenMetrics format of a single-process gateway;
prometheus-client's multiprocess mode cannot carry them.
"""

from __future__ import annotations

import os
import time
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)

# Latency buckets from a fraction of a millisecond (cache hits) to seconds (big models).
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

# Cosines of a shadow version's answers: the tail near 1.0 is where versions differ.
SHADOW_COSINE_BUCKETS = (
    0.5, 0.8, 0.9, 0.95, 0.97, 0.98, 0.985, 0.99, 0.995, 0.998, 0.999, 0.9999, 1.0,
)  # fmt: skip


class Family(Generic[M]):
    """A labelled metric whose child for each label set is looked up once.

    prometheus-client's `labels()` validates, converts and locks on every call; on the hot
    path that cost shows in profiles, and label sets here are few and bounded.
    """

    def __init__(self, metric: M) -> None:
        self.metric = metric
        self._children: dict[tuple[str, ...], M] = {}

    def labels(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*values)
        return child

    def __getattr__(self, name: str) -> Any:  # collect(), describe(), ... of the metric
        return getattr(self.metric, name)


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    """Every metric the gateway records; also the `auth.AuthObserver` of the app."""

    def __init__(
        self, registry: CollectorRegistry | None = None, exemplar_interval_s: float = 0.0
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self.exemplars = not multiprocess_mode()
        self.exemplar_interval_s = exemplar_interval_s
        self._exemplified: dict[tuple[str, ...], float] = {}  # series -> its last exemplar
        r = self.registry
        self.http_requests = Family(
            Counter(
                "gateway_http_requests",
                "HTTP requests by route template, method and status",
                ["route", "method", "status"],
                registry=r,
            )
        )
        self.http_duration = Family(
            Histogram(
                "gateway_http_request_duration_seconds",
                "HTTP request latency by route template and method",
                ["route", "method"],
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
        )
        self.inference_requests = Family(
            Counter(
                "gateway_inference_requests",
                "Inference requests by model, version, status (HTTP's, for gRPC too), cache "
                "outcome and protocol (http, grpc)",
                ["model", "version", "status", "cache", "protocol"],
                registry=r,
            )
        )
        self.inference_duration = Family(
            Histogram(
                "gateway_inference_duration_seconds",
                "Inference request latency (whole request) by model, version and cache outcome",
                ["model", "version", "cache"],
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
        )
        self.triton_duration = Family(
            Histogram(
                "gateway_triton_request_duration_seconds",
                "Latency of inference calls to Triton by model and version",
                ["model", "version"],
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
        )
        self.grpc_requests = Family(
            Counter(
                "gateway_grpc_requests",
                "gRPC calls by method and status code",
                ["method", "code"],
                registry=r,
            )
        )
        self.triton_retries = Counter(
            "gateway_triton_retries",
            "Inference calls tried again on another Triton after one failed without answering",
            registry=r,
        )
        self.triton_endpoint_calls = Family(
            Counter(
                "gateway_triton_endpoint_calls",
                "Inference calls answered, per Triton endpoint",
                ["endpoint"],
                registry=r,
            )
        )
        self.triton_errors = Family(
            Counter(
                "gateway_triton_errors",
                "Failed inference calls to Triton by model and gRPC status",
                ["model", "code"],
                registry=r,
            )
        )
        self.auth_failures = Family(
            Counter(
                "gateway_auth_failures",
                "Requests refused by authentication or authorisation, by reason",
                ["reason"],
                registry=r,
            )
        )
        self.shed = Counter(
            "gateway_shed_requests",
            "Inference requests refused with 503 because the worker was at GATEWAY_MAX_IN_FLIGHT",
            registry=r,
        )
        self.in_flight = Gauge(
            "gateway_in_flight_requests",
            "Inference requests being served",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.triton_ready_endpoints = Gauge(
            "gateway_triton_ready_endpoints",
            "Tritons that answered ready at the last health probe",
            multiprocess_mode="max",
            registry=r,
        )
        self.rate_limited = Counter(
            "gateway_rate_limited",
            "Requests refused with 429 because their key's rate limit was spent",
            registry=r,
        )
        self.degraded = Family(
            Gauge(
                "gateway_degraded",
                "1 while a dependency is failing and the gateway runs in its degraded mode",
                ["dependency"],
                multiprocess_mode="max",
                registry=r,
            )
        )
        for dependency in ("key_store", "triton"):
            self.degraded.labels(dependency).set(0)
        self.cache_lookups = Family(
            Counter(
                "gateway_cache_lookups",
                "Inference requests by model and cache outcome (hit, miss, coalesced, bypass)",
                ["model", "outcome"],
                registry=r,
            )
        )
        self.cache_hits = Family(
            Counter(
                "gateway_cache_hits",
                "Cache hits by the tier that answered (local, redis)",
                ["model", "tier"],
                registry=r,
            )
        )
        self.cache_bytes_saved = Family(
            Counter(
                "gateway_cache_bytes_saved",
                "Output bytes answered from the cache instead of Triton",
                ["model"],
                registry=r,
            )
        )
        self.shadow_requests = Family(
            Counter(
                "gateway_shadow_requests",
                "Requests mirrored to a shadow version, by outcome (compared, shed, failed)",
                ["model", "version", "outcome"],
                registry=r,
            )
        )
        self.shadow_cosine = Family(
            Histogram(
                "gateway_shadow_cosine",
                "Per row, the cosine of a shadow version's answer to the answer served",
                ["model", "version"],
                buckets=SHADOW_COSINE_BUCKETS,
                registry=r,
            )
        )
        self.shadow_label_rows = Family(
            Counter(
                "gateway_shadow_label_rows",
                "Rows of a shadow version's labels that agreed or differed with those served",
                ["model", "version", "result"],
                registry=r,
            )
        )
        self.cache_triton_seconds_saved = Family(
            Counter(
                "gateway_cache_triton_seconds_saved",
                "Seconds of Triton time that cache hits saved: each entry keeps how long its "
                "miss took in Triton",
                ["model"],
                registry=r,
            )
        )
        self.cache_warmup_requests = Family(
            Counter(
                "gateway_cache_warmup_requests",
                "Requests replayed for a version before traffic moved to it (promote, traffic "
                "split), by outcome: computed (Triton answered, the entry stored) or cached "
                "(the entry was there already)",
                ["model", "outcome"],
                registry=r,
            )
        )
        self.cache_verification_failures = Family(
            Counter(
                "gateway_cache_verification_failures",
                "Cache entries refused because their signature, key or framing was wrong",
                ["model"],
                registry=r,
            )
        )
        self.cache_errors = Family(
            Counter(
                "gateway_cache_errors",
                "Redis failures of the result cache by operation (the request went on)",
                ["operation"],
                registry=r,
            )
        )
        self.trace_spans_dropped = Counter(
            "gateway_trace_spans_dropped",
            "Finished spans dropped because the export queue was full",
            registry=r,
        )
        self.trace_export_failures = Counter(
            "gateway_trace_export_failures",
            "Batches of spans the exporter failed to deliver",
            registry=r,
        )

    def store_degraded(self, degraded: bool) -> None:
        self.degraded.labels("key_store").set(1 if degraded else 0)

    def exemplar(self, trace_id: str | None, series: tuple[str, ...] = ()) -> dict[str, str] | None:
        """An exemplar for a sampled trace, when the exposition can carry one and `series`
        (its labels) has had none for `exemplar_interval_s` (GATEWAY_EXEMPLAR_INTERVAL_S).

        A series shows only its latest exemplar, and Prometheus reads it once a scrape;
        prometheus-client validating and storing one per request cost ~4 µs of a traced
        request's CPU. Series are few and bounded (model labels are the catalog's)."""
        if not trace_id or not self.exemplars:
            return None
        if self.exemplar_interval_s > 0:
            now = time.monotonic()
            last = self._exemplified.get(series)
            if last is not None and now - last < self.exemplar_interval_s:
                return None
            self._exemplified[series] = now
        return {"trace_id": trace_id}
