"""Who may do what: the API key of a request, its scopes and its rate limit.

Every check of the gateway goes through `Access`, which turns `auth` errors into gateway
errors (401, 403, 429, 503) in one place and counts each refusal by reason.

Keys arrive as `Authorization: Bearer <key>` or `X-API-Key: <key>`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry import trace

import auth
from gateway.asgi import header
from gateway.errors import Forbidden, ServiceUnavailable, TooManyRequests, Unauthorized
from gateway.metrics import Metrics
from gateway.observability.tracing import Spans

Headers = Iterable[tuple[bytes, bytes]]


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
    authorization = header(headers, b"authorization")
    if authorization is not None:
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    api_key = header(headers, b"x-api-key")
    return api_key.decode("latin-1").strip() if api_key else None


class Access:
    """Authenticates, checks scopes and applies rate limits."""

    def __init__(
        self,
        authenticator: auth.Authenticator,
        rate_limiter: auth.RateLimiter,
        metrics: Metrics,
        retry_after_s: int,
        spans: Spans | None = None,
    ) -> None:
        self._authenticator = authenticator
        self._rate_limiter = rate_limiter
        self._metrics = metrics
        self._retry_after_s = retry_after_s
        self._spans = spans or Spans()

    async def for_model(self, headers: Headers, model: str) -> Grant:
        """A key whose `infer` scope covers `model`, within its rate limit."""
        with self._translated() as span:
            key = await self._authenticated(headers, span)
            if not key.allows_model(model):
                raise auth.Forbidden(f"this API key may not use model '{model}'")
            return await self._rate_limited(key)

    async def for_admin(self, headers: Headers) -> Grant:
        with self._translated() as span:
            key = await self._authenticated(headers, span)
            if not key.admin:
                raise auth.Forbidden("this API key may not use the admin API")
            return await self._rate_limited(key)

    async def for_anyone_with_a_key(self, headers: Headers) -> Grant:
        with self._translated() as span:
            key = await self._authenticated(headers, span)
            return await self._rate_limited(key)

    async def _authenticated(self, headers: Headers, span: trace.Span) -> auth.KeyRecord:
        key = await self._authenticator.authenticate(presented_key(headers))
        span.set_attribute("gateway.key_id", key.id)
        return key

    def forget(self, key_id: str) -> None:
        """Stop trusting what this process remembers of a key (it was just changed)."""
        self._authenticator.forget(key_id)

    async def _rate_limited(self, key: auth.KeyRecord) -> Grant:
        decision = await self._rate_limiter.check(key)
        if decision is not None and not decision.allowed:
            raise auth.RateLimited(decision)
        return Grant(key, decision)

    @contextmanager
    def _translated(self) -> Iterator[trace.Span]:
        """The `auth` span; auth errors inside become gateway errors, counted by reason."""
        with self._spans.start("auth") as span:
            try:
                yield span
            except auth.AuthError as exc:
                span.set_attribute("gateway.auth.refused", exc.reason)
                self._refused(exc)

    def _refused(self, exc: auth.AuthError) -> None:
        self._metrics.auth_failures.labels(exc.reason).inc()
        if isinstance(exc, auth.RateLimited):
            self._metrics.rate_limited.inc()
            raise TooManyRequests(exc.message, exc.decision.headers()) from exc
        if isinstance(exc, auth.Forbidden):
            raise Forbidden(exc.message) from exc
        if isinstance(exc, auth.AuthUnavailable):
            raise ServiceUnavailable(exc.message, self._retry_after_s) from exc
        raise Unauthorized(exc.message) from exc
