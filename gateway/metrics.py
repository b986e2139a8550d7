"""Prometheus metrics of one gateway app, on a registry of its own (no module globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class Metrics:
    """Every metric the gateway records; also the `auth.AuthObserver` of the app."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.auth_failures = Counter(
            "gateway_auth_failures",
            "Requests refused by authentication or authorisation, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "gateway_rate_limited",
            "Requests refused with 429 because their key's rate limit was spent",
            registry=self.registry,
        )
        self.degraded = Gauge(
            "gateway_degraded",
            "1 while a dependency is failing and the gateway runs in its degraded mode",
            ["dependency"],
            registry=self.registry,
        )
        self.degraded.labels("key_store").set(0)
        self.cache_lookups = Counter(
            "gateway_cache_lookups",
            "Inference requests by model and cache outcome (hit, miss, coalesced, bypass)",
            ["model", "outcome"],
            registry=self.registry,
        )
        self.cache_hits = Counter(
            "gateway_cache_hits",
            "Cache hits by the tier that answered (local, redis)",
            ["model", "tier"],
            registry=self.registry,
        )
        self.cache_bytes_saved = Counter(
            "gateway_cache_bytes_saved",
            "Output bytes answered from the cache instead of Triton",
            ["model"],
            registry=self.registry,
        )
        self.cache_verification_failures = Counter(
            "gateway_cache_verification_failures",
            "Cache entries refused because their signature, key or framing was wrong",
            ["model"],
            registry=self.registry,
        )
        self.cache_errors = Counter(
            "gateway_cache_errors",
            "Redis failures of the result cache by operation (the request went on)",
            ["operation"],
            registry=self.registry,
        )

    def store_degraded(self, degraded: bool) -> None:
        self.degraded.labels("key_store").set(1 if degraded else 0)
