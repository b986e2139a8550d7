"""Fingerprints move exactly when Triton (re)loads changed artifacts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gateway.cache import CachePolicy
from gateway.control.catalog import ModelCatalog, RepositoryFiles
from gateway.control.model_changes import SharedModelState
from tests.support.fake_triton import FakeTriton

POLICY = CachePolicy(True, 60, 1000)


def write(repository: Path, model: str, version: str, content: bytes) -> None:
    (repository / model / version).mkdir(parents=True, exist_ok=True)
    (repository / model / "config.pbtxt").write_text(f'name: "{model}"')
    (repository / model / version / "model.onnx").write_bytes(content)


def catalog_for(triton: FakeTriton, repository: Path | None) -> ModelCatalog:
    return ModelCatalog(triton, repository, 1.0, lambda model, config: POLICY)  # type: ignore[arg-type]


def fingerprint(catalog: ModelCatalog, model: str, version: str) -> str:
    view = catalog.get(model)
    assert view is not None
    return view.fingerprints[version]


def test_versions_defaults_and_content_derived_fingerprints(tmp_path: Path) -> None:
    write(tmp_path, "m", "1", b"one")
    write(tmp_path, "m", "2", b"two")
    triton = FakeTriton()
    triton.control.ready = {("m", "1"): 0, ("m", "2"): 0}
    first, second = catalog_for(triton, tmp_path), catalog_for(triton, tmp_path)
    asyncio.run(first.refresh())
    asyncio.run(second.refresh())
    view = first.get("m")
    assert view is not None and view.default_version == "2"
    assert fingerprint(first, "m", "1") != fingerprint(first, "m", "2")
    # two processes agree without talking to each other
    assert fingerprint(first, "m", "1") == fingerprint(second, "m", "1")


def test_files_changed_without_a_seen_reload_pause_caching_until_one_is_seen(
    tmp_path: Path,
) -> None:
    write(tmp_path, "m", "1", b"one")
    triton = FakeTriton()
    triton.control.ready = {("m", "1"): 0}
    changes: list[tuple[str, str]] = []

    async def changed(model: str, version: str) -> None:
        changes.append((model, version))

    catalog = ModelCatalog(triton, tmp_path, 1.0, lambda m, c: POLICY, changed)  # type: ignore[arg-type]
    asyncio.run(catalog.refresh())
    before = fingerprint(catalog, "m", "1")

    triton.control.ready[("m", "1")] = 7  # Triton served requests with the old model
    write(tmp_path, "m", "1", b"one, edited")  # edited on disk: loaded or not? unknown
    asyncio.run(catalog.refresh())
    view = catalog.get("m")
    assert view is not None and "1" not in view.fingerprints  # pending: served uncached
    assert changes == []

    triton.control.ready[("m", "1")] = 0  # a reload is seen: its statistics restart
    asyncio.run(catalog.refresh())
    assert fingerprint(catalog, "m", "1") != before
    assert changes == [("m", "1")]  # the old artifact's entries are purged


def test_files_reverted_before_any_reload_resume_caching(tmp_path: Path) -> None:
    write(tmp_path, "m", "1", b"one")
    triton = FakeTriton()
    triton.control.ready = {("m", "1"): 2}
    catalog = catalog_for(triton, tmp_path)
    asyncio.run(catalog.refresh())
    before = fingerprint(catalog, "m", "1")
    write(tmp_path, "m", "1", b"draft")
    asyncio.run(catalog.refresh())
    write(tmp_path, "m", "1", b"one")
    asyncio.run(catalog.refresh())
    assert fingerprint(catalog, "m", "1") == before


def test_a_reload_by_the_gateway_itself_is_adopted_even_if_statistics_miss_it(
    tmp_path: Path,
) -> None:
    write(tmp_path, "m", "1", b"one")
    triton = FakeTriton()
    triton.control.ready = {("m", "1"): 0}
    catalog = catalog_for(triton, tmp_path)
    asyncio.run(catalog.refresh())
    before = fingerprint(catalog, "m", "1")
    write(tmp_path, "m", "1", b"two")
    asyncio.run(catalog.refresh(reloaded=["m"]))
    assert fingerprint(catalog, "m", "1") != before


def test_config_changes_move_the_fingerprint_on_reload(tmp_path: Path) -> None:
    write(tmp_path, "m", "1", b"one")
    triton = FakeTriton()
    triton.control.ready = {("m", "1"): 3}
    catalog = catalog_for(triton, tmp_path)
    asyncio.run(catalog.refresh())
    before = fingerprint(catalog, "m", "1")
    triton.control.configs["m"] = {"name": "m", "max_batch_size": 8}
    triton.control.ready[("m", "1")] = 0
    asyncio.run(catalog.refresh())
    assert fingerprint(catalog, "m", "1") != before


def test_new_and_removed_versions(tmp_path: Path) -> None:
    write(tmp_path, "m", "1", b"one")
    triton = FakeTriton()
    triton.control.ready = {("m", "1"): 0}
    catalog = catalog_for(triton, tmp_path)
    asyncio.run(catalog.refresh())
    write(tmp_path, "m", "3", b"three")
    triton.control.ready[("m", "3")] = 0
    asyncio.run(catalog.refresh())
    view = catalog.get("m")
    assert view is not None and view.default_version == "3"
    del triton.control.ready[("m", "1")], triton.control.ready[("m", "3")]
    asyncio.run(catalog.refresh())
    assert catalog.get("m") is None


def test_without_a_repository_each_reload_gets_a_fresh_marker() -> None:
    triton = FakeTriton()
    triton.control.ready = {("m", "1"): 5}
    catalog = catalog_for(triton, None)
    asyncio.run(catalog.refresh())
    before = fingerprint(catalog, "m", "1")
    asyncio.run(catalog.refresh())
    assert fingerprint(catalog, "m", "1") == before
    triton.control.ready[("m", "1")] = 0
    asyncio.run(catalog.refresh())
    assert fingerprint(catalog, "m", "1") != before


def test_file_digests_are_reused_until_a_file_changes(tmp_path: Path) -> None:
    write(tmp_path, "m", "1", b"one")
    files = RepositoryFiles(tmp_path)
    first = files.digest("m", "1")
    assert files.digest("m", "1") == first
    (tmp_path / "m" / "labels.txt").write_text("a\nb\n")
    assert files.digest("m", "1") != first
    assert files.digest("m", "9") is None


@pytest.mark.timeout(60)  # the defect was a hang
def test_close_ends_the_refresh_loop_even_when_woken_at_the_same_moment() -> None:
    """A refresh asked for just as the gateway shuts down must not keep the loop alive
    (with asyncio.wait_for on Python 3.11 the cancellation was lost and shutdown hung)."""

    async def scenario() -> None:
        catalog = catalog_for(FakeTriton(), None)
        catalog.start()
        await asyncio.sleep(0.01)  # the loop waits for its event
        catalog.refresh_soon()
        await asyncio.wait_for(catalog.close(), 5)

    for _ in range(20):
        asyncio.run(scenario())


class FakeShared:
    """The Redis-held state other replicas write (gateway.control.model_changes)."""

    def __init__(self) -> None:
        self.generations: dict[str, int] = {}
        self.changing: set[str] = set()

    async def state(self, models: Any) -> SharedModelState:
        return SharedModelState(dict(self.generations), frozenset(self.changing))


def test_a_reload_by_another_replica_is_adopted_once_its_change_is_done(tmp_path: Path) -> None:
    write(tmp_path, "m", "1", b"one")
    triton = FakeTriton()
    triton.control.ready = {("m", "1"): 0}
    shared = FakeShared()
    catalog = ModelCatalog(
        triton,  # type: ignore[arg-type]
        tmp_path,
        1.0,
        lambda model, config: POLICY,
        shared=shared,  # type: ignore[arg-type]
    )
    asyncio.run(catalog.refresh())
    before = fingerprint(catalog, "m", "1")

    shared.changing.add("m")  # another replica writes new files, then has Triton load them
    write(tmp_path, "m", "1", b"uno")
    shared.generations["m"] = 1
    asyncio.run(catalog.refresh())
    view = catalog.get("m")
    assert view is None or "1" not in view.fingerprints  # mid-change: served uncached

    shared.changing.clear()  # done: the files on disk are the loaded ones
    asyncio.run(catalog.refresh())
    after = fingerprint(catalog, "m", "1")
    assert after != before
    asyncio.run(catalog.refresh())
    assert fingerprint(catalog, "m", "1") == after  # adopted once, not again
