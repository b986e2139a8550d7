"""Why a request was not let in.

    AuthError
    ├── Unauthenticated        401  no usable key
    │   ├── MissingKey              no Authorization / X-API-Key header
    │   ├── MalformedKey            not a well-formed key (format or checksum): no lookup made
    │   ├── InvalidKey              unknown key id or wrong secret (indistinguishable on purpose)
    │   ├── RevokedKey              the key was revoked (only said to a holder of the secret)
    │   └── ExpiredKey              the key expired (only said to a holder of the secret)
    ├── Forbidden              403  the key's scopes do not cover this model or /admin
    ├── RateLimited            429  the key's rate limit is spent; carries the decision
    └── AuthUnavailable        503  the key store cannot be reached and the key is not remembered

`reason` is a short, stable label for metrics and logs; messages never contain a secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from auth.ratelimit import RateDecision


class AuthError(Exception):
    """Base of every authentication or authorisation failure."""

    reason: ClassVar[str] = "error"
    default_message: ClassVar[str] = "not authorised"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class Unauthenticated(AuthError):
    """No usable API key was presented."""

    reason = "invalid"
    default_message = "invalid API key"


class MissingKey(Unauthenticated):
    """The request carries no key."""

    reason = "missing"
    default_message = "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"


class MalformedKey(Unauthenticated):
    """The key is not well formed (wrong shape or checksum)."""

    reason = "malformed"
    default_message = "malformed API key"


class InvalidKey(Unauthenticated):
    """Unknown key id or wrong secret."""

    reason = "invalid"


class RevokedKey(Unauthenticated):
    """The key was revoked."""

    reason = "revoked"
    default_message = "API key revoked"


class ExpiredKey(Unauthenticated):
    """The key is past its expiry."""

    reason = "expired"
    default_message = "API key expired"


class Forbidden(AuthError):
    """The key is valid but its scopes do not allow this."""

    reason = "forbidden"
    default_message = "this API key may not do that"


class RateLimited(AuthError):
    """The key's request rate is over its limit."""

    reason = "rate_limited"
    default_message = "rate limit exceeded"

    def __init__(self, decision: RateDecision) -> None:
        super().__init__(f"rate limit exceeded; retry in {decision.retry_after_s:.2f} s")
        self.decision = decision


class AuthUnavailable(AuthError):
    """The key store is unreachable and the key is not remembered."""

    reason = "store_unavailable"
    default_message = "cannot verify API keys right now; retry shortly"
