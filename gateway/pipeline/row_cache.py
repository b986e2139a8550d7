"""Results row by row: an entry per row in the result cache, the rows no tier has computed
by Triton together (`RowBatcher`), identical rows once. Used for the rows of a v2 batch on
a model whose rows are independent, and for the inputs of an embeddings request."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.cache import CacheKey, Directive, Outcome, ResultCache, cache_key
from gateway.control.catalog import ModelView
from gateway.pipeline.rows import RowBatcher
from gateway.pipeline.targets import Target
from gateway.protocol.types import InferRequest, InferResult


@dataclass(frozen=True, slots=True)
class Row:
    """One row to compute: its request (version pinned where known), the model's view
    (its batch size and deadline), and what it is cached under (None: not cached)."""

    request: InferRequest
    view: ModelView
    target: Target | None


class RowCache:
    """Each row's result, through the cache where the row has a target."""

    def __init__(self, cache: ResultCache, rows: RowBatcher) -> None:
        self._cache = cache
        self._rows = rows

    async def results(
        self, rows: Sequence[Row], tenant: str, directive: Directive, allow_stale: bool
    ) -> list[tuple[InferResult, Outcome]]:
        """The result and outcome of each row, in order."""
        digests = [_digest(row, tenant) for row in rows]
        distinct = dict(zip(digests, rows, strict=True))
        answers = await asyncio.gather(
            *(self._one(row, digest, directive, allow_stale) for digest, row in distinct.items())
        )
        by_digest = dict(zip(distinct, answers, strict=True))
        return [by_digest[digest] for digest in digests]

    async def _one(
        self, row: Row, digest: bytes, directive: Directive, allow_stale: bool
    ) -> tuple[InferResult, Outcome]:
        target = row.target
        if target is None or directive is Directive.NONE:
            self._cache.bypassed(row.view.name)
            return await self._compute(row), Outcome.BYPASS

        async def compute() -> InferResult:
            return await self._compute(row)

        key = CacheKey(digest, target.view.name, target.version)
        policy = target.view.cache_policy
        return await self._cache.get_or_compute(key, compute, policy, directive, allow_stale)

    async def _compute(self, row: Row) -> InferResult:
        batch = int(row.view.config.get("max_batch_size", 0) or 1)
        view = row.view
        return await self._rows.infer_row(
            row.request, batch, view.inference_timeout_s, view.outputs
        )


def _digest(row: Row, tenant: str) -> bytes:
    """The row's cache key; for a row not cached, a digest that only tells identical rows
    of one request apart."""
    if row.target is None:
        return cache_key(row.request, row.request.version, "", "")
    return cache_key(row.request, row.target.version, row.target.fingerprint, tenant)
