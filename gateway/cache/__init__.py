"""The result cache: tensor- and version-correct keys, signed entries, two tiers,
single-flight, fail-open. See `key.py` for what a key covers and `result_cache.py` for
how a request moves through the tiers."""

from gateway.cache.entry import EntryCodec, InvalidEntry
from gateway.cache.key import cache_key, is_stateful, memo_key
from gateway.cache.local import LocalTier
from gateway.cache.policy import CachePolicy, Directive, ModelCacheSettings, resolve_policy
from gateway.cache.redis_tier import RedisTier
from gateway.cache.result_cache import CacheKey, LockSettings, Outcome, Replay, ResultCache

__all__ = [
    "CacheKey",
    "CachePolicy",
    "Directive",
    "EntryCodec",
    "InvalidEntry",
    "LocalTier",
    "LockSettings",
    "ModelCacheSettings",
    "Outcome",
    "RedisTier",
    "Replay",
    "ResultCache",
    "cache_key",
    "is_stateful",
    "memo_key",
    "resolve_policy",
]
