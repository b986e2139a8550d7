"""The in-process tier's byte bound holds for real memory: what it counts for an entry is
at least what the entry costs the process (measured with tracemalloc)."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

import numpy as np
import orjson

from gateway.backends.triton.codec import decode_response
from gateway.cache import CacheKey, CachePolicy, EntryCodec, Replay, ResultCache
from gateway.observability.metrics import Metrics
from gateway.protocol import decode_infer_request, encode_infer_response
from tests.support.memory_redis_tier import MemoryRedis

POLICY = CachePolicy(True, 600, 1_000_000)
ENTRIES = 2_000


def triton_answer(seed: int) -> tuple[bytes, int]:
    """A binary response as Triton sends it for tabular_classifier (label, probabilities)."""
    rng = np.random.default_rng(seed)
    label = np.array([[seed % 2]], np.int64).tobytes()
    probabilities = rng.random((1, 2), dtype=np.float32).tobytes()
    header = orjson.dumps(
        {
            "model_name": "tabular_classifier",
            "model_version": "2",
            "outputs": [
                {"name": "label", "datatype": "INT64", "shape": [1, 1],
                 "parameters": {"binary_data_size": 8}},
                {"name": "probabilities", "datatype": "FP32", "shape": [1, 2],
                 "parameters": {"binary_data_size": 8}},
            ],
        }
    )  # fmt: skip
    return header + label + probabilities, len(header)


def request_body(seed: int) -> bytes:
    data = np.random.default_rng(seed).random(30, dtype=np.float32).tolist()
    return orjson.dumps(
        {"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP32", "data": data}]}
    )


def test_counted_bytes_cover_what_results_and_responses_cost() -> None:
    async def fill(cache: ResultCache) -> None:
        for seed in range(ENTRIES):
            body, length = triton_answer(seed)
            result = decode_response("tabular_classifier", body, str(length).encode(), 0.0)
            key = CacheKey(seed.to_bytes(32, "big"), "tabular_classifier", "2")
            cache.store(key, result, POLICY)
            request = decode_infer_request("tabular_classifier", "", request_body(seed), None)
            replay = Replay(encode_infer_response(request, result), 16)
            memo = (seed + ENTRIES).to_bytes(32, "big")
            cache.remember(memo, replay, key.model, key.version, POLICY)
        await cache.flush(5.0)

    redis = MemoryRedis()
    codec = EntryCodec(b"k" * 32)
    cache = ResultCache(1 << 30, 600, redis, codec, Metrics())  # type: ignore[arg-type]
    redis_values = redis.values
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    asyncio.run(fill(cache))
    redis_values.clear()  # the stand-in for Redis is not process memory of the gateway
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    used = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    counted = cache._local.size + cache._memo.size
    assert len(cache._local) == len(cache._memo) == ENTRIES
    assert used <= counted, (used / ENTRIES, counted / ENTRIES)
    assert counted < 2 * used  # and not so far above that the bound wastes most of itself
