"""Who may do what: the API key of a request, its scopes and its rate limit.

Every check of the gateway goes through `Access`, which turns `auth` errors into gateway
errors (401, 403, 429, 503) in one place and counts each refusal by reason.

Keys arrive as `Authorization: Bearer <key>` or `X-API-Key: <key>`. A client address that
failed to authenticate too often in the last minute waits (429) before its key is looked at
(`auth_throttle.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import auth
from gateway.errors import (
    Forbidden,
    GatewayError,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
)
from gateway.observability.metrics import Metrics
from gateway.observability.spans import Spans
from gateway.pipeline.auth_throttle import CLIENT_ADDRESS, AddressThrottled, FailedAuthThrottle
from gateway.protocol.headers import Headers, header


@dataclass(frozen=True, slots=True)
class Grant:
    """A request let in: whose key it carries and what its rate limit said."""

    key: auth.KeyRecord
    rate: auth.RateDecision | None

    def headers(self) -> list[tuple[bytes, bytes]]:
        if self.rate is None:
            return []
        return [(k.lower().encode(), v.encode()) for k, v in self.rate.headers().items()]


def presented_key(headers: Headers) -> str | None:
    """The key the request carries; an Authorization header that is not `Bearer <key>`
    (and no X-API-Key) is refused saying so, rather than as a missing key."""
    authorization = header(headers, b"authorization")
    if authorization is not None:
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    api_key = header(headers, b"x-api-key")
    if api_key:
        return api_key.decode("latin-1").strip()
    if authorization is not None:
        raise auth.MalformedKey(
            "the Authorization header must be 'Bearer <key>' (the word Bearer, a space, "
            "then the key)"
        )
    return None


class Access:
    """Authenticates, checks scopes and applies rate limits."""

    def __init__(
        self,
        authenticator: auth.Authenticator,
        rate_limiter: auth.RateLimiter,
        metrics: Metrics,
        retry_after_s: int,
        spans: Spans | None = None,
        throttle: FailedAuthThrottle | None = None,
    ) -> None:
        self._throttle = throttle or FailedAuthThrottle(0)
        self._authenticator = authenticator
        self._rate_limiter = rate_limiter
        self._metrics = metrics
        self._retry_after_s = retry_after_s
        self._spans = spans or Spans()

    async def for_model(self, headers: Headers, model: str) -> Grant:
        """A key whose `infer` scope covers `model`, within its rate limit."""

        def in_scope(key: auth.KeyRecord) -> None:
            if not key.allows_model(model):
                raise auth.Forbidden(f"this API key may not use model '{model}'")

        return await self._granted(headers, in_scope)

    def check_scope(self, key: auth.KeyRecord, model: str) -> None:
        """For a request whose body names its model (after `for_anyone_with_a_key`): 403
        unless `key`'s `infer` scope covers `model`, counted as any refusal."""
        if not key.allows_model(model):
            raise self._refused(auth.Forbidden(f"this API key may not use model '{model}'"))

    async def for_admin(self, headers: Headers) -> Grant:
        return await self._granted(headers, _admin)

    async def for_anyone_with_a_key(self, headers: Headers) -> Grant:
        return await self._granted(headers, None)

    async def _granted(
        self, headers: Headers, check: Callable[[auth.KeyRecord], None] | None
    ) -> Grant:
        """The presented key, authenticated, passing `check`, within its rate limit; in an
        `auth` span. Auth errors become gateway errors, counted by reason."""
        address = CLIENT_ADDRESS.get()
        with self._spans.start("auth") as span:
            try:
                self._throttle.check(address)
            except AddressThrottled:
                self._metrics.auth_failures.labels("throttled").inc()
                span.set_attribute("gateway.auth.refused", "throttled")
                raise
            try:
                key = await self._authenticator.authenticate(presented_key(headers))
                span.set_attribute("gateway.key_id", key.id)
                if check is not None:
                    check(key)
                return await self._rate_limited(key)
            except auth.AuthError as exc:
                span.set_attribute("gateway.auth.refused", exc.reason)
                if isinstance(exc, auth.Unauthenticated):
                    self._throttle.failed(address)
                raise self._refused(exc) from exc

    def forget(self, key_id: str) -> None:
        """Stop trusting what this process remembers of a key (it was just changed)."""
        self._authenticator.forget(key_id)

    async def _rate_limited(self, key: auth.KeyRecord) -> Grant:
        decision = await self._rate_limiter.check(key)
        if decision is not None and not decision.allowed:
            raise auth.RateLimited(decision)
        return Grant(key, decision)

    def _refused(self, exc: auth.AuthError) -> GatewayError:
        """The gateway error for an auth refusal, counted."""
        self._metrics.auth_failures.labels(exc.reason).inc()
        if isinstance(exc, auth.RateLimited):
            self._metrics.rate_limited.inc()
            return TooManyRequests(exc.message, exc.decision.headers())
        if isinstance(exc, auth.Forbidden):
            return Forbidden(exc.message)
        if isinstance(exc, auth.AuthUnavailable):
            return ServiceUnavailable(exc.message, self._retry_after_s)
        return Unauthorized(exc.message)


def _admin(key: auth.KeyRecord) -> None:
    if not key.admin:
        raise auth.Forbidden("this API key may not use the admin API")
