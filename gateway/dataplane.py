"""What happens to an inference request between decoding and encoding.

    DataPlane.infer(request, key, directive)
      the catalog knows the model and version, its cache is on, the request is not part of
      a sequence, Cache-Control is not no-store?   no  -> Triton            X-Cache: bypass
      pin the version an unversioned request resolves to; compute the cache key
      Cache-Control: no-cache  -> Triton, then store the answer            X-Cache: bypass
      in-process tier                                                      X-Cache: hit
      ResultCache.fetch: another request's flight, Redis, another
        process's entry, or Triton (then stored)              X-Cache: coalesced | hit | miss

Pinning the version means the answer always comes from the version the key names, even if
a newer version is loaded while the request is in flight.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from auth import KeyRecord
from gateway.cache import CacheKey, Directive, Outcome, ResultCache, cache_key, is_stateful
from gateway.catalog import ModelCatalog, ModelView
from gateway.errors import NotFound
from gateway.metrics import Metrics
from gateway.protocol.types import InferRequest, InferResult
from gateway.triton import TritonClient

UNKNOWN_MODEL = "_unknown"  # metric label for models the catalog does not know


@dataclass(frozen=True, slots=True)
class Served:
    """A result and how it was obtained."""

    result: InferResult
    outcome: Outcome


class DataPlane:
    """Answers inference requests from the cache or from Triton."""

    def __init__(
        self,
        triton: TritonClient,
        catalog: ModelCatalog,
        cache: ResultCache,
        metrics: Metrics,
        cache_per_tenant: bool,
    ) -> None:
        self._triton = triton
        self._catalog = catalog
        self._cache = cache
        self._metrics = metrics
        self._cache_per_tenant = cache_per_tenant

    async def infer(self, request: InferRequest, key: KeyRecord, directive: Directive) -> Served:
        view = self._catalog.get(request.model)
        version = request.version or (view.default_version if view else None)
        fingerprint = view.fingerprints.get(version) if view and version else None
        if (
            view is None
            or version is None
            or fingerprint is None
            or not view.cache_policy.enabled
            or directive is Directive.NONE
            or is_stateful(request)
        ):
            return await self._bypass(request, view)
        pinned = request if request.version else replace(request, version=version)
        digest = cache_key(request, version, fingerprint, self._tenant(key))
        entry = CacheKey(digest, request.model, version)
        if directive is Directive.WRITE_ONLY:
            result = await self._ask_triton(pinned, request)
            await self._cache.store(entry, result, view.cache_policy)
            return self._served(view.name, result, Outcome.BYPASS)
        cached = self._cache.lookup(entry)
        if cached is not None:
            return self._served(view.name, cached, Outcome.HIT, tier="local")
        result, outcome = await self._cache.fetch(
            entry, lambda: self._ask_triton(pinned, request), view.cache_policy
        )
        return self._served(view.name, result, outcome, tier="redis")

    async def _ask_triton(self, pinned: InferRequest, original: InferRequest) -> InferResult:
        try:
            return await self._triton.infer(pinned)
        except NotFound:
            if original.version:
                raise
            # The version we resolved to went away: our view is stale.
            self._catalog.refresh_soon()
            raise

    async def _bypass(self, request: InferRequest, view: ModelView | None) -> Served:
        result = await self._triton.infer(request)
        if view is None or (request.version and request.version not in view.fingerprints):
            self._catalog.refresh_soon()  # Triton serves something the catalog lacks
        return self._served(view.name if view else UNKNOWN_MODEL, result, Outcome.BYPASS)

    def _served(
        self, model: str, result: InferResult, outcome: Outcome, tier: str | None = None
    ) -> Served:
        self._metrics.cache_lookups.labels(model, outcome.value).inc()
        if outcome is Outcome.HIT:
            self._metrics.cache_hits.labels(model, tier or "redis").inc()
        if outcome in (Outcome.HIT, Outcome.COALESCED):
            saved = sum(len(tensor.data) for tensor in result.outputs)
            self._metrics.cache_bytes_saved.labels(model).inc(saved)
        return Served(result, outcome)

    def _tenant(self, key: KeyRecord) -> str:
        return key.tenant_name if self._cache_per_tenant or key.private_cache else ""
