"""The data plane: the right answer from the cache or Triton, for the version the request
resolves to (Triton and the cache's Redis tier faked at their boundaries)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import pytest

import auth
from gateway.cache import Directive, Outcome
from gateway.control.lifecycle.shadow import Mirror
from gateway.control.lifecycle.traffic import Shadow, TrafficSplit
from gateway.errors import BadRequest, NotFound
from gateway.pipeline.dataplane import Answer, WarmUpBudget
from tests.support.pipeline import MODEL, PER_ROW, Harness, harness, label_of, request_body

KEY = auth.KeyRecord(id="k1", name="team", hash="h", models=("*",), created_at=0.0)


def run(repository: Path, scenario: Callable[[Harness], Awaitable[None]]) -> None:
    async def main() -> None:
        await scenario(await harness(repository))

    asyncio.run(main())


async def ask(
    h: Harness,
    body: bytes,
    version: str = "",
    directive: Directive = Directive.READ_AND_WRITE,
    model: str = MODEL,
) -> Answer:
    answer = await h.dataplane.answer(model, version, body, None, KEY, directive)
    await asyncio.sleep(0)  # the background store of a miss
    return answer


def lookups(h: Harness, outcome: str) -> float:
    return float(h.metrics.cache_lookups.labels(MODEL, outcome)._value.get())


def test_a_repeat_is_a_hit_and_other_tensors_are_never_served_its_answer(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        first = await ask(h, request_body(1.0, 2.0))
        repeat = await ask(h, request_body(1.0, 2.0))
        other = await ask(h, request_body(1.0, 5.0))
        assert [first.outcome, repeat.outcome, other.outcome] == [
            Outcome.MISS,
            Outcome.HIT,
            Outcome.MISS,
        ]
        assert [label_of(a.response.body) for a in (first, repeat, other)] == [3, 3, 6]
        assert len(h.triton.calls) == 2
        # An unversioned request is pinned to the version its cache key names.
        assert [c.version for c in h.triton.calls] == ["2", "2"]
        assert (lookups(h, "miss"), lookups(h, "hit")) == (2, 1)

    run(tmp_path, scenario)


def test_each_version_has_its_own_entries(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        one = await ask(h, request_body(1.0), version="1")
        two = await ask(h, request_body(1.0), version="2")
        default = await ask(h, request_body(1.0))
        assert [(a.outcome, a.version) for a in (one, two, default)] == [
            (Outcome.MISS, "1"),
            (Outcome.MISS, "2"),
            (Outcome.HIT, "2"),
        ]

    run(tmp_path, scenario)


def test_a_split_routes_unversioned_requests_and_keys_the_cache_by_its_version(
    tmp_path: Path,
) -> None:
    async def scenario(h: Harness) -> None:
        h.splits.splits[MODEL] = TrafficSplit({"1": 100})
        routed = await ask(h, request_body(4.0))
        assert (routed.outcome, routed.version, h.triton.calls[-1].version) == (
            Outcome.MISS,
            "1",
            "1",
        )
        assert (await ask(h, request_body(4.0), version="2")).outcome is Outcome.MISS

    run(tmp_path, scenario)


def test_a_split_with_a_shadow_returns_a_mirror_for_the_other_version(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        h.splits.splits[MODEL] = TrafficSplit({"2": 100}, shadow=Shadow("1", 100.0))
        answer = await ask(h, request_body(4.0))
        assert isinstance(answer.mirror, Mirror) and answer.mirror.request.version == "1"

    run(tmp_path, scenario)


def test_no_store_bypasses_and_no_cache_refreshes_the_entry(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        body = request_body(2.0)
        assert (await ask(h, body, directive=Directive.NONE)).outcome is Outcome.BYPASS
        assert (await ask(h, body, directive=Directive.NONE)).outcome is Outcome.BYPASS
        assert h.redis.values == {}  # no-store: nothing kept
        assert (await ask(h, body, directive=Directive.WRITE_ONLY)).outcome is Outcome.BYPASS
        assert (await ask(h, body)).outcome is Outcome.HIT  # no-cache stored its answer
        assert len(h.triton.calls) == 3 and lookups(h, "bypass") == 3

    run(tmp_path, scenario)


def test_a_bad_body_is_400_for_a_known_model_and_404_for_an_unknown_one(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        with pytest.raises(BadRequest):
            await ask(h, b"{not json")
        with pytest.raises(NotFound):
            await ask(h, b"{not json", model="nope")
        assert h.triton.calls == []

    run(tmp_path, scenario)


def rows_body(*rows: tuple[float, ...]) -> bytes:
    tensor = {"name": "x", "datatype": "FP32", "shape": [len(rows), len(rows[0])]}
    return orjson.dumps({"inputs": [{**tensor, "data": [v for row in rows for v in row]}]})


def test_a_model_with_independent_rows_caches_each_row(tmp_path: Path) -> None:
    config = {"name": MODEL, "max_batch_size": 8}

    async def scenario(h: Harness) -> None:
        first = await ask(h, rows_body((1.0, 1.0), (2.0, 2.0)))
        assert first.outcome is Outcome.MISS and h.triton.calls[-1].inputs[0].shape == (2, 2)
        second = await ask(h, rows_body((2.0, 2.0), (3.0, 3.0), (1.0, 1.0), (3.0, 3.0)))
        assert second.outcome is Outcome.MISS
        assert h.triton.calls[-1].inputs[0].shape == (1, 2)  # only the new row, once
        assert orjson.loads(second.response.body)["outputs"][0]["data"] == [4, 6, 2, 6]
        assert (await ask(h, rows_body((3.0, 3.0), (2.0, 2.0)))).outcome is Outcome.HIT
        assert len(h.triton.calls) == 2

    async def main() -> None:
        await scenario(await harness(tmp_path, config=config, policy=PER_ROW))

    asyncio.run(main())


def test_a_warm_up_replays_the_replaced_version_s_popular_requests(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        bodies = [request_body(float(n)) for n in range(3)]
        for times, body in zip((5, 3, 1), bodies, strict=True):
            for _ in range(times):
                await ask(h, body, version="1")
        before = len(h.triton.calls)
        warmed = await h.dataplane.warm(MODEL, "1", "2", WarmUpBudget(requests=2))
        assert (warmed.computed, warmed.cached, warmed.failed) == (2, 0, 0)
        assert [c.version for c in h.triton.calls[before:]] == ["2", "2"]
        # The two most frequent are hits on version 2 now; the third was not replayed.
        assert (await ask(h, bodies[0], version="2")).outcome is Outcome.HIT
        assert (await ask(h, bodies[1], version="2")).outcome is Outcome.HIT
        assert (await ask(h, bodies[2], version="2")).outcome is Outcome.MISS
        again = await h.dataplane.warm(MODEL, "1", "2", WarmUpBudget(requests=2))
        assert (again.computed, again.cached) == (0, 2)
        count = h.metrics.cache_warmup_requests.labels(MODEL, "computed")._value.get()
        assert count == 2

    run(tmp_path, scenario)
