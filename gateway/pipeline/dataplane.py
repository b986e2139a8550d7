"""What happens to an inference request between authentication and the response.

    DataPlane.answer(model, version, body, ...)
      a request naming no version goes where the model's traffic split sends it (if any)
      the catalog knows the model and version, its cache is on, Cache-Control allows reads?
        the same request bytes answered recently -> replay that response   X-Cache: hit
      decode the v2 request (400 naming the input)
      part of a sequence, no-store, uncacheable model/version? -> Triton    X-Cache: bypass
      compute the cache key for the version the request resolves to (a key per row
        for models that declare their rows independent: `cache_rows`), then
      ResultCache.get_or_compute (the cache counts its own outcomes):
        Cache-Control: no-cache  -> Triton, then store the answer          X-Cache: bypass
        the in-process tier, another request's flight, Redis, another
        process's entry, or Triton (then stored)      X-Cache: hit | coalesced | hit | miss
        Triton unavailable: an entry within its stale-if-error grace  X-Cache: stale
      encode the response the way the request asked (and keep it for replays)
      the split names a shadow version? maybe a Mirror for after the response (shadow.py)

The model's view is resolved once per request, so the memo, the cache key and the Triton
call all name the same version and fingerprint. Pinning the version means the answer
always comes from the version the key names, even if a newer version is loaded meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, replace

from auth import KeyRecord
from gateway.backends.triton import TritonClient
from gateway.cache import (
    CacheKey,
    Directive,
    Outcome,
    Replay,
    ResultCache,
    cache_key,
    is_stateful,
    memo_key,
)
from gateway.cache.popular import PopularRequests
from gateway.control.catalog import UNKNOWN_MODEL, ModelCatalog, ModelView
from gateway.control.lifecycle.shadow import Mirror
from gateway.control.lifecycle.traffic import TrafficSplits
from gateway.errors import BadRequest, GatewayError, NotFound, TritonUnavailable
from gateway.pipeline.row_cache import Row, RowCache
from gateway.pipeline.rows import joined, split_rows
from gateway.pipeline.targets import Target, cache_tenant
from gateway.protocol import EncodedResponse, decode_infer_request, encode_infer_response
from gateway.protocol.bounds import UNBOUNDED
from gateway.protocol.types import InferRequest, InferResult

POPULAR_MAX_BYTES = 256 * 1024  # larger requests are counted, not kept for warm-ups
# Answers a replay may repeat: not a bypass (uncached) or a stale answer (only while Triton
# cannot answer).
_REPLAYABLE = frozenset({Outcome.MISS, Outcome.HIT, Outcome.COALESCED})


@dataclass(frozen=True, slots=True)
class WarmUpBudget:
    """How much a cache warm-up may do: requests, seconds, at once."""

    requests: int = 100
    seconds: float = 10.0
    concurrency: int = 2


@dataclass(frozen=True, slots=True)
class WarmUp:
    """What a cache warm-up did for `version`, replaying `replaced`'s popular requests."""

    replaced: str
    version: str
    computed: int = 0  # Triton answered; the entry is stored for the new version
    cached: int = 0  # the new version's entry was there already
    failed: int = 0
    late: int = 0  # not started: the time budget ran out
    seconds: float = 0.0
    skipped: str | None = None

    def describe(self) -> dict[str, object]:
        if self.skipped is not None:
            return {"from": self.replaced, "to": self.version, "skipped": self.skipped}
        return {
            "from": self.replaced,
            "to": self.version,
            "computed": self.computed,
            "cached": self.cached,
            "failed": self.failed,
            "late": self.late,
            "seconds": self.seconds,
        }


@dataclass(frozen=True, slots=True)
class V2Request:
    """A KServe v2 inference body (JSON, or a JSON header then binary tensors)."""

    body: bytes
    header_length: int | None  # Inference-Header-Content-Length


@dataclass(frozen=True, slots=True)
class Answer:
    """An encoded response and how its result was obtained."""

    response: EncodedResponse
    outcome: Outcome
    version: str  # the model version that answered
    mirror: Mirror | None = None  # to submit to ShadowTraffic once the response is sent
    cached_parts: tuple[int, int] | None = None  # per-input answers: (cached, of all)


class DataPlane:
    """Answers inference requests from the cache or from Triton."""

    def __init__(
        self,
        triton: TritonClient,
        catalog: ModelCatalog,
        cache: ResultCache,
        traffic: TrafficSplits,
        cache_per_tenant: bool,
        rows: RowCache,
        popular: PopularRequests | None = None,
    ) -> None:
        self._triton = triton
        self._rows = rows
        self._popular = popular or PopularRequests()
        self._catalog = catalog
        self._cache = cache
        self._traffic = traffic
        self._cache_per_tenant = cache_per_tenant

    async def answer(
        self,
        model: str,
        version: str,
        body: bytes,
        header_length: int | None,
        key: KeyRecord,
        directive: Directive,
        allow_stale: bool = True,
    ) -> Answer:
        request = (model, version, body, header_length, key, directive, allow_stale)
        try:
            return await self._answer(*request)
        except NotFound:
            if version:
                raise
            # The version this unversioned request was routed to went away meanwhile (a
            # lifecycle change): look again, once.
            await self._catalog.refresh()
            return await self._answer(*request)

    async def _answer(
        self,
        model: str,
        version: str,
        body: bytes,
        header_length: int | None,
        key: KeyRecord,
        directive: Directive,
        allow_stale: bool,
    ) -> Answer:
        view = self._catalog.get(model)
        routed = version or self._route(view, key)
        target = Target.of(view, routed)
        tenant = cache_tenant(key, self._cache_per_tenant, view)
        memo = None
        if target is not None and directive is Directive.READ_AND_WRITE:
            memo = memo_key(
                tenant, model, version, target.version, target.fingerprint, header_length, body
            )
            replay = self._cache.replay(memo, model)
            if replay is not None:
                self._popular.seen(model, target.version, memo, tenant, None)
                return Answer(replay.response, Outcome.HIT, target.version)
        request = await self._decoded(view, model, version, body, header_length)
        if memo is not None and target is not None:
            kept = request if len(body) <= POPULAR_MAX_BYTES else None
            self._popular.seen(model, target.version, memo, tenant, kept)
        if target is None or directive is Directive.NONE or is_stateful(request):
            result = await self._bypass(
                replace(request, version=routed) if routed else request, view
            )
            outcome = Outcome.BYPASS
        else:
            result, outcome = await self._cached(request, target, tenant, directive, allow_stale)
        response = encode_infer_response(request, result)
        if memo is not None and target is not None and outcome in _REPLAYABLE:
            replay = Replay(response, _output_bytes(result), result.triton_s)
            self._cache.remember(memo, replay, model, target.version, target.view.cache_policy)
        return Answer(
            response, outcome, result.version, self._mirror(view, request, result, outcome)
        )

    async def _decoded(
        self,
        view: ModelView | None,
        model: str,
        version: str,
        body: bytes,
        header_length: int | None,
    ) -> InferRequest:
        """The decoded request; a bad body for a model Triton does not serve is a 404, as
        Triton answers (the model is looked up before its inputs are read)."""
        try:
            bounds = view.bounds if view is not None else UNBOUNDED
            return decode_infer_request(model, version, body, header_length, bounds)
        except BadRequest:
            await self.check_known(model, version)
            raise

    async def check_known(self, model: str, version: str) -> None:
        """NotFound if Triton serves no `model` (`version`): a bad body for a model Triton
        does not serve is a 404, as Triton answers (it looks the model up first)."""
        if self._catalog.get(model) is None:  # the catalog may be behind Triton: ask it
            await self._triton.control.model_metadata(model, version)

    def _route(self, view: ModelView | None, key: KeyRecord) -> str:
        """The version a traffic split sends this unversioned request to ("" if none)."""
        if view is None:
            return ""
        split = self._traffic.get(view.name)
        if split is None:
            return ""
        return split.choose(view.name, view.ready, key.id) or ""

    def _mirror(
        self, view: ModelView | None, request: InferRequest, result: InferResult, outcome: Outcome
    ) -> Mirror | None:
        """A copy for the split's shadow version, if this request is one to mirror."""
        split = self._traffic.get(view.name) if view is not None else None
        if view is None or split is None or split.shadow is None or outcome is Outcome.STALE:
            return None
        shadow = split.shadow.version
        if result.version == shadow or shadow not in view.ready or is_stateful(request):
            return None
        if not split.mirrors():
            return None
        return Mirror(replace(request, version=shadow), result, view.inference_timeout_s)

    async def _cached(
        self,
        request: InferRequest,
        target: Target,
        tenant: str,
        directive: Directive,
        allow_stale: bool,
    ) -> tuple[InferResult, Outcome]:
        """The result through the cache; Triton is asked for the version the key names (a
        newer version loaded meanwhile must not answer under this key)."""
        view = target.view
        pinned = request if request.version else replace(request, version=target.version)
        rows = split_rows(pinned) if view.cache_policy.per_row else None
        if rows is not None:
            return await self._cached_rows(rows, target, tenant, directive, allow_stale)
        digest = cache_key(request, target.version, target.fingerprint, tenant)

        async def ask_triton() -> InferResult:
            return await self._triton.infer(pinned, view.inference_timeout_s, view.outputs)

        return await self._cache.get_or_compute(
            CacheKey(digest, view.name, target.version),
            ask_triton,
            view.cache_policy,
            directive,
            allow_stale,
        )

    async def warm(self, model: str, replaced: str, version: str, budget: WarmUpBudget) -> WarmUp:
        """Replay the most frequent recent requests of `replaced` for `version`, so its
        cache entries are there before traffic moves to it: at most `budget.requests`,
        `budget.concurrency` at a time, none started after `budget.seconds`."""
        target = Target.of(self._catalog.get(model), version)
        if target is None or not target.view.cache_policy.warm_up:
            return WarmUp(replaced, version, skipped="the model's cache or warm-up is off")
        started = time.monotonic()
        gate = asyncio.Semaphore(budget.concurrency)

        async def replay(tenant: str, request: InferRequest) -> str:
            async with gate:
                if time.monotonic() - started > budget.seconds:
                    return "late"
                pinned = replace(request, version=version)
                try:
                    _, outcome = await self._cached(
                        pinned, target, tenant, Directive.READ_AND_WRITE, allow_stale=False
                    )
                except GatewayError:
                    return "failed"
                return "computed" if outcome is Outcome.MISS else "cached"

        popular = self._popular.top(model, replaced, budget.requests)
        outcomes = Counter(await asyncio.gather(*(replay(t, r) for t, r in popular)))
        for outcome in ("computed", "cached"):
            self._cache.warmed(model, outcome, outcomes[outcome])
        return WarmUp(
            replaced,
            version,
            computed=outcomes["computed"],
            cached=outcomes["cached"],
            failed=outcomes["failed"],
            late=outcomes["late"],
            seconds=round(time.monotonic() - started, 3),
        )

    async def _cached_rows(
        self,
        rows: list[InferRequest],
        target: Target,
        tenant: str,
        directive: Directive,
        allow_stale: bool,
    ) -> tuple[InferResult, Outcome]:
        """A batch of independent rows, an entry per row (row_cache.py)."""
        parts = await self._rows.results(
            [Row(row, target.view, target) for row in rows], tenant, directive, allow_stale
        )
        return joined([result for result, _ in parts]), Outcome.combined(o for _, o in parts)

    async def _bypass(self, request: InferRequest, view: ModelView | None) -> InferResult:
        try:
            if view is None:
                result = await self._triton.infer(request)
            else:
                result = await self._triton.infer(request, view.inference_timeout_s, view.outputs)
        except TritonUnavailable as exc:
            # Triton answers 503 both when it is down and for a version it unloaded (e.g.
            # dropped by the version policy); the catalog tells the second apart: a 404.
            if view is not None and request.version and request.version not in view.ready:
                raise NotFound(
                    f"model '{request.model}' has no ready version {request.version}"
                ) from exc
            raise
        if view is None or (request.version and request.version not in view.ready):
            self._catalog.refresh_soon()  # Triton serves something the catalog lacks
        self._cache.bypassed(view.name if view else UNKNOWN_MODEL)
        return result


def _output_bytes(result: InferResult) -> int:
    return sum(len(tensor.data) for tensor in result.outputs)
