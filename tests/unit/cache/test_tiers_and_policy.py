"""The in-process tier, model policies and Cache-Control."""

from __future__ import annotations

from gateway.cache import CachePolicy, Directive, LocalTier, ModelCacheSettings, resolve_policy
from gateway.cache.local import ENTRY_OVERHEAD_BYTES
from gateway.protocol.types import InferResult


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def result(model: str = "m", version: str = "1") -> InferResult:
    return InferResult(model, version, ())


def put(
    tier: LocalTier[InferResult], key: bytes, value: InferResult, size: int, ttl: float
) -> None:
    tier.put(key, value, size, ttl, value.model, value.version)


def test_local_tier_is_bounded_in_bytes_least_recently_used_first() -> None:
    entry = 40 + ENTRY_OVERHEAD_BYTES  # what an entry of 40 bytes counts
    tier: LocalTier[InferResult] = LocalTier(max_bytes=2 * entry + 20, ttl_s=60)
    put(tier, b"a", result(), 40, 60)
    put(tier, b"b", result(), 40, 60)
    assert tier.get(b"a") is not None  # a is now the most recently used
    put(tier, b"c", result(), 40, 60)
    assert tier.get(b"b") is None and tier.get(b"a") is not None and tier.get(b"c") is not None
    assert tier.size == 2 * entry
    put(tier, b"huge", result(), 2 * entry, 60)
    assert tier.get(b"huge") is None


def test_local_tier_expires_at_the_shorter_ttl() -> None:
    clock = Clock()
    tier: LocalTier[InferResult] = LocalTier(max_bytes=10_000, ttl_s=5, clock=clock)
    put(tier, b"short", result(), 1, 2)
    put(tier, b"long", result(), 1, 60)
    clock.now = 3
    assert tier.get(b"short") is None and tier.get(b"long") is not None
    clock.now = 6
    assert tier.get(b"long") is None and tier.size == 0


def test_local_tier_purges_by_model_and_version() -> None:
    tier: LocalTier[InferResult] = LocalTier(max_bytes=10_000, ttl_s=60)
    put(tier, b"m1", result("m", "1"), 1, 60)
    put(tier, b"m2", result("m", "2"), 1, 60)
    put(tier, b"n1", result("n", "1"), 1, 60)
    assert tier.purge("m", "1") == 1 and tier.get(b"m2") is not None
    assert tier.purge("m") == 1 and len(tier) == 1
    assert tier.purge() == 1 and len(tier) == 0


def test_policy_precedence_settings_over_config_over_defaults() -> None:
    defaults = CachePolicy(True, 300, 1000)
    assert resolve_policy(defaults, None, {}) == defaults
    from_config = resolve_policy(defaults, None, {"cache_enabled": "false", "cache_ttl_s": "30"})
    assert from_config == CachePolicy(False, 30, 1000)
    overridden = resolve_policy(
        defaults, ModelCacheSettings(enabled=True, max_entry_bytes=5), {"cache_enabled": "false"}
    )
    assert overridden == CachePolicy(True, 300, 5)
    assert resolve_policy(defaults, None, {"cache_ttl_s": "-1"}).ttl_s == 300


def test_cache_control_directives() -> None:
    assert Directive.from_header(None) is Directive.READ_AND_WRITE
    assert Directive.from_header(b"max-age=60") is Directive.READ_AND_WRITE
    assert Directive.from_header(b"No-Cache") is Directive.WRITE_ONLY
    assert Directive.from_header(b"no-cache, no-store") is Directive.NONE
