"""`ModelCatalog`: the gateway's fresh view of what Triton serves, for cache keys.

For every ready model version it knows a **fingerprint**: SHA-256 of the model name, the
version, the configuration Triton has loaded, and the content of the version's files in
the model repository as they were when Triton (re)loaded them. The fingerprint is part of
every cache key, so an entry can only be served while the exact artifact that produced it
is the one loaded.

When does the catalog know that Triton (re)loaded a version? Triton gives no load time,
but it restarts a version's statistics when it loads it, and it only reloads a version
whose files changed. So a version is taken as (re)loaded when it first appears READY,
when it reappears, when its inference/execution counts go backwards, or when the gateway
loaded it itself (`refresh(reloaded=[model])`) or another gateway replica says it did
(`gateway.control.model_changes`: a reload generation in Redis, read on every refresh); only then
are its files adopted as the loaded artifact. Fingerprints are computed from content, so
every worker process agrees on them without talking to the others.

Files that differ on disk from the adopted ones, with no reload seen, are ambiguous:
either not loaded yet, or loaded between two refreshes in a way the statistics could not
show (0 -> n -> 0 inferences). Such a version is **pending**: it is served, but its
answers are neither read from nor written to the cache, until a reload is seen (a
warning is logged once). When a reload does bring new files, the version's entries are
purged (`on_artifact_change`), which also removes anything written under the old
fingerprint during the refresh window.

Freshness: `refresh()` runs every `refresh_s` in the background (two HTTP calls to Triton:
repository index and statistics; model configs only for versions that changed; file
digests re-read only for files whose size or mtime changed), and on demand after the
gateway itself loads or unloads a model. A change made to Triton behind the gateway's
back is noticed within `refresh_s`; until then, hits may still come from the previous
artifact. Change models through the gateway for changes that take effect at once.

Without a readable model repository (a remote Triton), a detected reload gets a random
marker instead of a file digest: still correct, but worker processes then stop sharing
entries for that version.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from gateway.backends.triton import TritonClient
from gateway.backends.triton.answers import ExpectedOutputs, expected_outputs
from gateway.backends.triton.model_deadlines import configured_deadline
from gateway.cache.policy import CachePolicy
from gateway.control.model_changes import ModelChanges
from gateway.errors import GatewayError
from gateway.protocol.bounds import InputBounds, bounds_of
from resilience import StoreUnavailable

logger = logging.getLogger(__name__)

UNKNOWN_MODEL = "_unknown"  # metric label for requests naming a model Triton does not serve


@dataclass(frozen=True, slots=True)
class ModelView:
    """What the gateway knows of one model: its ready versions and their fingerprints."""

    name: str
    # Every ready version: what traffic may be routed to (a pending version too).
    ready: frozenset[str]
    # Ready version -> fingerprint, for the versions whose answers may be cached: not a
    # pending one (its files changed since Triton loaded it; served uncached until a reload).
    fingerprints: Mapping[str, str]
    config: Mapping[str, Any]
    bounds: InputBounds  # the most values its inputs take, checked before a body is parsed
    outputs: ExpectedOutputs | None  # what Triton's answers must hold (None: not known)
    cache_policy: CachePolicy
    default_version: str | None  # what serves a request naming no version: the highest ready
    # The config's `inference_timeout_s`; None: a deadline fitted to the model's latency.
    inference_timeout_s: float | None = None


def config_parameter(config: Mapping[str, Any], name: str) -> str | None:
    """A `parameters { key: ... }` string value of a model config."""
    value = config.get("parameters", {}).get(name)
    return value.get("string_value") if isinstance(value, dict) else None


def _highest(versions: Iterable[str]) -> str | None:
    numeric = [v for v in versions if v.isdigit()]
    return max(numeric, key=int) if numeric else None


@dataclass(slots=True)
class _VersionState:
    loaded: str  # digest of the files as they were when Triton last (re)loaded the version
    fingerprint: str | None  # None while the files on disk differ from `loaded` (pending)
    counts: tuple[int, int]  # (inference_count, execution_count) at the last refresh


@dataclass
class _Snapshot:
    models: dict[str, ModelView] = field(default_factory=dict)


class RepositoryFiles:
    """Content digests of a model version's files, re-reading only files that changed."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self._known: dict[Path, tuple[int, int, str]] = {}  # path -> (size, mtime, sha256)

    @property
    def readable(self) -> bool:
        return self.root is not None and self.root.is_dir()

    def digest(self, model: str, version: str) -> str | None:
        """SHA-256 over the model folder's own files and everything under `<version>/`."""
        if self.root is None:
            return None
        model_dir = self.root / model
        version_dir = model_dir / version
        if not version_dir.is_dir():
            return None
        files = [p for p in model_dir.iterdir() if p.is_file()]
        # Python-backend models get a __pycache__ when Triton imports them: not the artifact.
        files += [p for p in version_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        total = hashlib.sha256()
        for path in sorted(files):
            total.update(str(path.relative_to(model_dir)).encode() + b"\0")
            total.update(self._file_digest(path).encode())
        return total.hexdigest()

    def _file_digest(self, path: Path) -> str:
        stat = path.stat()
        known = self._known.get(path)
        if known is not None and known[:2] == (stat.st_size, stat.st_mtime_ns):
            return known[2]
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        self._known[path] = (stat.st_size, stat.st_mtime_ns, digest.hexdigest())
        return digest.hexdigest()


class ModelCatalog:
    """Keeps `ModelView`s of Triton's ready models fresh."""

    def __init__(
        self,
        triton: TritonClient,
        repository: Path | None,
        refresh_s: float,
        policy: Callable[[str, Mapping[str, Any]], CachePolicy],
        on_artifact_change: Callable[[str, str], Awaitable[None]] | None = None,
        shared: ModelChanges | None = None,
    ) -> None:
        self._triton = triton
        self._shared = shared
        self._generations: dict[str, int] | None = None  # as last acted on
        self._policy = policy
        self._on_artifact_change = on_artifact_change or _nothing
        self._wake = asyncio.Event()
        self._changing: set[str] = set()
        self._files = RepositoryFiles(repository)
        self._refresh_s = refresh_s
        self._versions: dict[tuple[str, str], _VersionState] = {}
        self._configs: dict[str, dict[str, Any]] = {}
        self._snapshot = _Snapshot()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        if not self._files.readable:
            logger.warning(
                "model repository %s is not readable: same-version reloads are detected from "
                "Triton's statistics only, and workers will not share cache entries after one",
                repository,
            )

    def get(self, model: str) -> ModelView | None:
        return self._snapshot.models.get(model)

    def metric_label(self, model: str) -> str:
        """`model` if the catalog knows it; a fixed label otherwise (bounded cardinality)."""
        return model if model in self._snapshot.models else UNKNOWN_MODEL

    def models(self) -> list[ModelView]:
        return list(self._snapshot.models.values())

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="model-catalog")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @contextlib.asynccontextmanager
    async def changing(self, model: str) -> AsyncIterator[None]:
        """The gateway itself is changing `model`'s files: no warnings about them meanwhile."""
        self._changing.add(model)
        try:
            yield
        finally:
            self._changing.discard(model)

    def refresh_soon(self) -> None:
        """Ask the background loop for a refresh now (e.g. Triton knows a model we don't)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives
            # as the event is set, and close() then waits for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._refresh_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.refresh()
            except GatewayError as exc:
                logger.debug("model catalog refresh failed: %s", exc.message)

    async def refresh(self, reloaded: Iterable[str] = ()) -> None:
        """Re-read Triton's index and statistics and re-fingerprint (re)loaded versions.

        `reloaded`: models the caller has just (re)loaded itself, taken as reloaded even if
        their statistics did not show it.
        """
        async with self._lock:
            index = await self._triton.control.repository_index()
            statistics = await self._triton.control.model_statistics()
            counts = {
                (s["name"], str(s["version"])): (
                    int(s.get("inference_count", 0)),
                    int(s.get("execution_count", 0)),
                )
                for s in statistics
            }
            ready = sorted(
                (entry["name"], str(entry["version"]))
                for entry in index
                if entry.get("state") == "READY" and "version" in entry
            )
            changing, by_others = await self._changes_elsewhere({name for name, _ in ready})
            forced = set(reloaded) | by_others
            changed = [
                key
                for key in ready
                if key not in self._versions
                or key[0] in forced
                or (key in counts and _went_backwards(counts[key], self._versions[key].counts))
            ]
            for model in sorted({model for model, _ in changed}):
                self._configs[model] = await self._triton.control.model_config(model)
            versions: dict[tuple[str, str], _VersionState] = {}
            for key in ready:
                previous = self._versions.get(key)
                on_disk = await asyncio.to_thread(self._files.digest, *key)
                count = counts.get(key, previous.counts if previous else (0, 0))
                if previous is None or key in changed:
                    loaded = on_disk or f"marker:{uuid.uuid4()}"
                    versions[key] = _VersionState(loaded, self._fingerprint(*key, loaded), count)
                    if previous is not None and previous.loaded != loaded:
                        logger.info("model %s version %s was reloaded with new files", *key)
                        await self._on_artifact_change(*key)
                elif on_disk is not None and on_disk != previous.loaded:
                    quiet = key[0] in self._changing or key[0] in changing
                    if previous.fingerprint is not None and not quiet:
                        logger.warning(
                            "model %s version %s: its files changed since Triton loaded it; "
                            "caching is paused for it until a reload is seen",
                            *key,
                        )
                    versions[key] = _VersionState(previous.loaded, None, count)
                else:
                    fingerprint = previous.fingerprint or self._fingerprint(*key, previous.loaded)
                    versions[key] = _VersionState(previous.loaded, fingerprint, count)
            self._versions = versions
            self._snapshot = _Snapshot(self._views())

    async def _changes_elsewhere(self, models: set[str]) -> tuple[frozenset[str], set[str]]:
        """(models another replica is changing now, models another replica has reloaded
        since the last refresh); nothing of either when Redis cannot tell."""
        if self._shared is None:
            return frozenset(), set()
        try:
            shared = await self._shared.state(models)
        except StoreUnavailable:
            return frozenset(), set()
        first = self._generations is None
        known = self._generations or {}
        settled = {m: n for m, n in shared.generations.items() if m not in shared.changing}
        reloaded = {m for m, n in settled.items() if not first and known.get(m, 0) != n}
        # A model mid-change keeps its last generation acted on, so it is adopted once done.
        self._generations = {**known, **settled}
        return shared.changing, reloaded

    def _fingerprint(self, model: str, version: str, files: str) -> str:
        config = orjson.dumps(self._configs.get(model, {}), option=orjson.OPT_SORT_KEYS)
        digest = hashlib.sha256()
        for part in (model.encode(), version.encode(), config, files.encode()):
            digest.update(len(part).to_bytes(8, "little") + part)
        return digest.hexdigest()

    def _views(self) -> dict[str, ModelView]:
        fingerprints: dict[str, dict[str, str]] = {}
        ready: dict[str, set[str]] = {}
        for (model, version), state in self._versions.items():
            versions = fingerprints.setdefault(model, {})
            ready.setdefault(model, set()).add(version)
            if state.fingerprint is not None:  # pending versions are served uncached
                versions[version] = state.fingerprint
        views = {}
        for model, versions in fingerprints.items():
            config = self._configs.get(model, {})
            views[model] = ModelView(
                model,
                frozenset(ready[model]),
                versions,
                config,
                bounds_of(model, config),
                expected_outputs(config),
                self._policy(model, config),
                _highest(ready[model]),
                configured_deadline(config_parameter(config, "inference_timeout_s")),
            )
        return views


async def _nothing(model: str, version: str) -> None:
    return None


def _went_backwards(now: tuple[int, int], before: tuple[int, int]) -> bool:
    return any(a < b for a, b in zip(now, before, strict=True))


def repository_path(configured: Path) -> Path | None:
    """The model repository if this process can read it."""
    return configured if configured.is_dir() and os.access(configured, os.R_OK) else None
