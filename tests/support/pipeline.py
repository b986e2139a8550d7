"""The inference pipeline assembled from real parts, with Triton, the cache's Redis tier,
traffic splits and rate limits faked at their boundaries (tests/unit/pipeline/)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

import auth
from gateway.cache import CachePolicy, EntryCodec, LockSettings, ResultCache
from gateway.control.catalog import ModelCatalog
from gateway.control.lifecycle.shadow import Mirror, ShadowTraffic
from gateway.control.lifecycle.traffic import TrafficSplit
from gateway.observability.metrics import Metrics
from gateway.observability.spans import Spans
from gateway.pipeline.access import Access
from gateway.pipeline.capacity import Capacity
from gateway.pipeline.dataplane import DataPlane
from gateway.pipeline.embeddings import EmbeddingsPlane
from gateway.pipeline.inference import InferencePipeline
from gateway.pipeline.row_cache import RowCache
from gateway.pipeline.rows import RowBatcher
from gateway.protocol.types import InferRequest, InferResult
from tests.support.fake_triton import FakeTriton, labels
from tests.support.memory_redis_tier import MemoryRedis

MODEL = "m"
POLICY = CachePolicy(True, 60, 100_000)
PER_ROW = CachePolicy(True, 60, 100_000, per_row=True)


def request_body(*values: float) -> bytes:
    """A v2 JSON request of one FP32 row of `values`."""
    row = list(values)
    tensor = {"name": "x", "datatype": "FP32", "shape": [1, len(row)], "data": row}
    return orjson.dumps({"inputs": [tensor]})


def label_of(body: bytes) -> int:
    """The label in a v2 JSON response (`FakeTriton`'s answer: the row's sum)."""
    (output,) = orjson.loads(body)["outputs"]
    return int(output["data"][0])


class Splits:
    """Traffic splits at the boundary (TrafficSplits reads them from Redis)."""

    def __init__(self) -> None:
        self.splits: dict[str, TrafficSplit] = {}

    def get(self, model: str) -> TrafficSplit | None:
        return self.splits.get(model)


class Unlimited:
    """Rate limits at the boundary: no key is limited."""

    async def check(self, record: auth.KeyRecord) -> auth.RateDecision | None:
        return None


@dataclass
class Shadows:
    """Shadow traffic at the boundary: what was submitted, in order."""

    submitted: list[Mirror | None] = field(default_factory=list)

    def submit(self, mirror: Mirror | None) -> None:
        self.submitted.append(mirror)


@dataclass
class Harness:
    pipeline: InferencePipeline
    dataplane: DataPlane
    embeddings: EmbeddingsPlane
    triton: FakeTriton
    redis: MemoryRedis
    splits: Splits
    shadows: Shadows
    capacity: Capacity
    metrics: Metrics
    keys: auth.KeyService


async def harness(
    repository: Path,
    versions: tuple[str, ...] = ("1", "2"),
    answer: Callable[[InferRequest], InferResult] = labels,
    config: dict[str, Any] | None = None,
    policy: CachePolicy = POLICY,
) -> Harness:
    """A pipeline over model `m` with `versions` READY (files in `repository`), Triton
    answering with `answer`, the model's config `config`."""
    triton = FakeTriton(answer)
    if config is not None:
        triton.control.configs[MODEL] = config
    for version in versions:
        (repository / MODEL / version).mkdir(parents=True, exist_ok=True)
        (repository / MODEL / version / "model.onnx").write_bytes(version.encode())
        triton.control.ready[(MODEL, version)] = 0
    (repository / MODEL / "config.pbtxt").write_text(f'name: "{MODEL}"')
    metrics, spans = Metrics(), Spans()
    catalog = ModelCatalog(
        triton,  # type: ignore[arg-type]
        repository,
        60.0,
        lambda model, config: policy,
    )
    await catalog.refresh()
    redis = MemoryRedis()
    cache = ResultCache(
        1_000_000,
        60,
        redis,  # type: ignore[arg-type]
        EntryCodec(b"k" * 32),
        metrics,
        LockSettings(ttl_s=5, wait_s=1, poll_s=0.001),
        spans=spans,
    )
    splits, shadows = Splits(), Shadows()
    rows = RowCache(cache, RowBatcher(triton))  # type: ignore[arg-type]
    dataplane = DataPlane(triton, catalog, cache, splits, False, rows)  # type: ignore[arg-type]
    store, hasher = auth.InMemoryKeyStore(), auth.KeyHasher(b"p" * 32)
    authenticator = auth.Authenticator(store, hasher, observer=metrics)
    access = Access(authenticator, Unlimited(), metrics, 1, spans)  # type: ignore[arg-type]
    capacity = Capacity(limit=4, per_key=2, retry_after_s=1)
    shadow_traffic: ShadowTraffic = shadows  # type: ignore[assignment]
    embeddings = EmbeddingsPlane(catalog, rows, repository, cache_per_tenant=False)
    pipeline = InferencePipeline(
        capacity, access, dataplane, embeddings, shadow_traffic, catalog, metrics, spans
    )
    keys = auth.KeyService(store, hasher)
    return Harness(
        pipeline, dataplane, embeddings, triton, redis, splits, shadows, capacity, metrics, keys
    )
