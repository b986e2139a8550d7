"""API keys for the gateway: format, hashed storage, scopes, rate limits, administration.

A package of its own that never imports `gateway`; the gateway wires it in. Redis failures
(`StoreUnavailable`) and the circuit breaker come from `resilience`, shared with the gateway.

    keys.py           ApiKey: `gwk_<id>_<secret><checksum>`, generate and parse
    hashing.py        KeyHasher: HMAC-SHA256 with a server-side pepper
    records.py        KeyRecord: what is stored (hash, scopes, limits, life cycle)
    store.py          KeyStore: Redis and in-memory implementations
    authenticator.py  Authenticator: presented key -> verified record, remembered in-process
    ratelimit.py      RateLimiter: GCRA in Redis (Lua), in-process fallback
    service.py        KeyService: create, list, revoke, rotate, bootstrap admin
    errors.py         why a request was refused
"""

from auth.authenticator import Authenticator
from auth.errors import (
    AuthError,
    AuthUnavailable,
    ExpiredKey,
    Forbidden,
    InvalidKey,
    MalformedKey,
    MissingKey,
    RateLimited,
    RevokedKey,
    Unauthenticated,
)
from auth.hashing import KeyHasher
from auth.keys import ApiKey
from auth.observer import AuthObserver, NullObserver
from auth.ratelimit import LocalRateLimiter, RateDecision, RateLimiter
from auth.records import KeyRecord
from auth.service import IssuedKey, KeyConflict, KeyService, UnknownKey
from auth.store import InMemoryKeyStore, KeyStore, RedisKeyStore, StoreEmptied

__all__ = [
    "ApiKey",
    "AuthError",
    "AuthObserver",
    "AuthUnavailable",
    "Authenticator",
    "ExpiredKey",
    "Forbidden",
    "InMemoryKeyStore",
    "InvalidKey",
    "IssuedKey",
    "KeyConflict",
    "KeyHasher",
    "KeyRecord",
    "KeyService",
    "KeyStore",
    "LocalRateLimiter",
    "MalformedKey",
    "MissingKey",
    "NullObserver",
    "RateDecision",
    "RateLimited",
    "RateLimiter",
    "RedisKeyStore",
    "RevokedKey",
    "StoreEmptied",
    "Unauthenticated",
    "UnknownKey",
]
