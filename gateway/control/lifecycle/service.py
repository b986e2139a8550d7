"""`ModelLifecycle`: publish, split, promote, roll back, unload; with no downtime and no
stale cached answer.

    publish(model, onnx)   validate the file against the config (nothing changes if it is
                           wrong) -> pin unversioned traffic to the current default if no
                           split exists (a new version takes no traffic until split or
                           promoted) -> write it as the next version folder -> add the
                           version to the config's version policy -> Triton loads it ->
                           warm it up with the probe set (or zeros) -> report success.
                           Any failure puts config, folders and split back as they were.
    split(model, weights)  share unversioned requests among ready versions (sticky per
                           key if asked); kept in Redis, so it survives restarts
    split(..., shadow)     also mirror a share of the model's requests to a version that
                           takes no traffic (shadow.py), for live evidence
    promote(model, v)      the quality gate (unless forced): the probe set, and the
                           shadow figures of v against the version it replaces (required
                           above quality_gate_min_shadow_requests, judged when present),
                           then 100 % to v
    rollback(model)        the split before the last change
    unload(model, v)       drop v from the policy and reload; refused while traffic is
                           routed to it or when it is the last version

Operations on one model run one at a time (an in-process lock plus a Redis lock shared by
every gateway process). After each change the catalog is refreshed at once, and every
version of the model gets a new fingerprint (its config changed), so no cached answer of
the old state can be served. While Triton reloads, the versions already loaded keep
serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.backends.triton import TritonClient
from gateway.control.catalog import ModelCatalog
from gateway.control.lifecycle.config_file import (
    config_text,
    policy_versions,
    read_config,
    versions_on_disk,
    with_served_versions,
    write_config_text,
)
from gateway.control.lifecycle.errors import Conflict, LifecycleError, QualityGateFailed
from gateway.control.lifecycle.new_model import ModelOptions, config_for
from gateway.control.lifecycle.quality import (
    GateResult,
    compare,
    generated_probes,
    probe_requests,
)
from gateway.control.lifecycle.shadow_agreement import COSINE, LiveAgreement, ShadowAgreement
from gateway.control.lifecycle.traffic import Shadow, TrafficSplit, TrafficSplits
from gateway.control.lifecycle.validation import validate_onnx
from gateway.control.model_changes import ModelChanges
from gateway.errors import GatewayError, NotFound, ServiceUnavailable
from gateway.protocol.names import check_model_path
from resilience import StoreUnavailable

logger = logging.getLogger(__name__)

LOCK_TTL_MS = 300_000
# (model, version replaced, version taking over) -> what the cache warm-up did
WarmUpHook = Callable[[str, str, str], Awaitable[dict[str, object]]]


@dataclass(frozen=True)
class GateThresholds:
    min_agreement: float
    min_cosine: float
    min_shadow_requests: int = 0


class ModelLifecycle:
    """Changes which versions Triton serves and how traffic reaches them."""

    def __init__(
        self,
        repository: Path,
        triton: TritonClient,
        catalog: ModelCatalog,
        traffic: TrafficSplits,
        changes: ModelChanges,
        thresholds: GateThresholds,
        retry_after_s: int,
        agreement: ShadowAgreement | None = None,
    ) -> None:
        self._warm_up_hook: WarmUpHook | None = None
        self._artifacts: dict[Path, tuple[tuple[int, int], str]] = {}
        self._repository = repository
        self._triton = triton
        self._catalog = catalog
        self._traffic = traffic
        self._changes = changes
        self._thresholds = thresholds
        self._retry_after_s = retry_after_s
        self._agreement = agreement
        self._locks: dict[str, asyncio.Lock] = {}

    def warm_up_with(self, hook: WarmUpHook) -> None:
        """What warms a version's cache before traffic moves to it (the data plane's)."""
        self._warm_up_hook = hook

    async def describe(self) -> list[dict[str, Any]]:
        """Every model: its versions and their states (Triton's index) and its split."""
        models: dict[str, dict[str, Any]] = {}
        for entry in await self._triton.control.repository_index():
            model = models.setdefault(entry["name"], {"name": entry["name"], "versions": []})
            if "version" in entry:
                model["versions"].append(
                    {k: entry[k] for k in ("version", "state", "reason") if k in entry}
                )
        for name, model in models.items():
            for version in model["versions"]:
                artifact = self._artifact(name, version["version"])
                if artifact is not None:
                    version["artifact"] = artifact
            split = self._traffic.get(name)
            model["traffic"] = None if split is None else split.describe()
            if split is not None and split.shadow is not None:
                model["traffic"]["shadow"]["live"] = await self._live(name, split.shadow.version)
            model["versions"].sort(key=lambda v: int(v["version"]) if v["version"].isdigit() else 0)
        return sorted(models.values(), key=lambda m: m["name"])

    async def publish(self, model: str, data: bytes) -> int:
        model_dir = self.model_dir(model)
        async with self._exclusive(model):
            original = config_text(model_dir)
            config = read_config(model_dir)
            if config.platform == "ensemble" or config.backend not in ("onnxruntime", ""):
                raise LifecycleError(
                    f"model '{model}' is not an ONNX model; only those can be published"
                )
            validate_onnx(data, config)
            on_disk = versions_on_disk(model_dir)
            version = max(on_disk, default=0) + 1
            served = policy_versions(config, on_disk)
            # A new version takes no traffic until a split or a promotion gives it some: with
            # no split, unversioned requests would otherwise follow Triton to the newest.
            pinned = False
            default = self._default(model)
            if self._traffic.get(model) is None and default is not None:
                await self._store(model, TrafficSplit({default: 100}, serving=default))
                pinned = True
            staging = model_dir / f".publishing-{version}"
            staging.mkdir()
            (staging / "model.onnx").write_bytes(data)
            staging.rename(model_dir / str(version))
            write_config_text(model_dir, with_served_versions(original, [*served, version]))
            try:
                await self._load(model)
                await self._warm_up(model_dir, str(version))
            except GatewayError as exc:
                await self._restore(model_dir, original, version)
                if pinned:
                    with contextlib.suppress(StoreUnavailable, LookupError):
                        await self._traffic.rollback(model)
                raise LifecycleError(
                    f"version {version} of '{model}' did not serve: {exc.message}"
                ) from exc
            await self._catalog.refresh(reloaded=[model])
            logger.info("published model %s version %d", model, version)
            return version

    async def add(
        self, model: str, data: bytes, options: ModelOptions, dry_run: bool = False
    ) -> dict[str, Any]:
        """A new model from an ONNX file: its config derived from the graph (new_model.py),
        then version 1 published as any version is (validated, loaded, warmed up). With
        `dry_run`, only the config it would write."""
        model_dir = self._new_model_dir(model)
        config = config_for(model, data, options)
        if dry_run:
            return {"model": model, "config": config, "added": False}
        model_dir.mkdir()
        write_config_text(model_dir, config)
        try:
            version = await self.publish(model, data)
        except BaseException:
            shutil.rmtree(model_dir, ignore_errors=True)
            with contextlib.suppress(GatewayError):
                await self._triton.control.unload_model(model)
            raise
        return {"model": model, "version": str(version), "config": config, "added": True}

    async def add_folder(self, model: str, files: dict[str, bytes]) -> dict[str, Any]:
        """A new model from a folder of its own (any backend Triton has), taken as it is:
        `files` maps paths inside the folder to their content; Triton loads it."""
        model_dir = self._new_model_dir(model)
        if "config.pbtxt" not in files:
            raise LifecycleError("the model folder has no config.pbtxt")
        staging = self._repository / f".adding-{model}"
        shutil.rmtree(staging, ignore_errors=True)
        for relative, content in files.items():
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        try:
            config = read_config(staging)
        except Exception as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise LifecycleError(f"config.pbtxt does not parse: {exc}") from exc
        if config.name and config.name != model:
            shutil.rmtree(staging, ignore_errors=True)
            raise LifecycleError(f"config.pbtxt names the model '{config.name}', not '{model}'")
        staging.rename(model_dir)
        async with self._exclusive(model):
            try:
                await self._load(model)
            except GatewayError as exc:
                shutil.rmtree(model_dir, ignore_errors=True)
                raise LifecycleError(f"Triton could not load '{model}': {exc.message}") from exc
            await self._catalog.refresh(reloaded=[model])
        versions = [str(v) for v in versions_on_disk(model_dir)]
        return {
            "model": model,
            "versions": versions,
            "config": config_text(model_dir),
            "added": True,
        }

    async def split(
        self, model: str, weights: dict[str, int], sticky: bool, shadow: Shadow | None = None
    ) -> tuple[TrafficSplit, list[dict[str, object]]]:
        """The new split, and the cache warm-ups done for the versions it gives more
        traffic (from the version serving today) before it took effect."""
        async with self._exclusive(model):
            await self._catalog.refresh()
            ready = self._ready(model)
            unknown = sorted(v for v, w in weights.items() if w > 0 and v not in ready)
            if shadow is not None and shadow.version not in ready:
                unknown.append(shadow.version)
            if unknown:
                raise LifecycleError(f"model '{model}' has no ready version {', '.join(unknown)}")
            if not any(w > 0 for w in weights.values()) or any(w < 0 for w in weights.values()):
                raise LifecycleError("weights must be non-negative with at least one above 0")
            if shadow is not None:
                if weights.get(shadow.version, 0) > 0:
                    raise LifecycleError(
                        f"version {shadow.version} takes traffic in this split; a shadow "
                        "version takes none (give it weight 0 or mirror another version)"
                    )
                if not 0 < shadow.percent <= 100:
                    raise LifecycleError("the shadow's percent must be above 0 and at most 100")
            serving = self._serving(model)
            kept = {v: w for v, w in weights.items() if w > 0}
            before = self._traffic.get(model)
            shares = before.weights if before is not None else {}
            gaining = [v for v, w in kept.items() if w > shares.get(v, 0) and v != serving]
            warm_ups = [await self._warmed(model, serving, v) for v in gaining]
            split = TrafficSplit(kept, sticky, shadow, serving)
            await self._store(model, split)
            return split, [w for w in warm_ups if w is not None]

    async def promote(self, model: str, version: str, force: bool) -> dict[str, Any]:
        async with self._exclusive(model):
            await self._catalog.refresh()
            ready = self._ready(model)
            if version not in ready:
                raise LifecycleError(f"model '{model}' has no ready version {version}")
            current_split = self._traffic.get(model)
            current = self._serving(model)
            gate: GateResult | None = None
            live: LiveAgreement | None = None
            skipped = _skipped(model, version, current, force)
            if skipped is None and current is not None:
                thresholds = self._thresholds_of(model)
                gate = await compare(
                    self._triton,
                    self.model_dir(model),
                    version,
                    current,
                    thresholds.min_agreement,
                    thresholds.min_cosine,
                )
                if not gate.passed:
                    raise QualityGateFailed(
                        f"version {version} of '{model}' fails the quality gate against version "
                        f"{current} on its probe set: {gate.measure} {gate.value:.4f} < "
                        f"{gate.threshold} (promote with force to override)"
                    )
                live = await self._live_gate(model, version, current, thresholds)
            warm_up = await self._warmed(model, current, version)
            sticky = current_split.sticky if current_split else False
            shadow = current_split.shadow if current_split else None
            kept = shadow if shadow is not None and shadow.version != version else None
            split = TrafficSplit({version: 100}, sticky, kept, serving=version)
            await self._store(model, split)
            verdict = (
                {"result": "passed", "against": current, **gate.describe()}
                if gate is not None
                else {"result": "skipped", "reason": skipped}
            )
            return {
                "model": model,
                "version": version,
                "replaced": current,
                "quality_gate": verdict,
                "shadow": live.describe() if live else None,
                "warm_up": warm_up,
                "forced": force,
            }

    async def rollback(self, model: str) -> TrafficSplit | None:
        async with self._exclusive(model):
            try:
                return await self._traffic.rollback(model)
            except LookupError as exc:
                raise Conflict(
                    f"model '{model}' has no earlier traffic split to go back to"
                ) from exc
            except StoreUnavailable as exc:
                raise self._unavailable() from exc

    async def unload(self, model: str, version: str) -> None:
        model_dir = self.model_dir(model)
        async with self._exclusive(model):
            split = self._traffic.get(model)
            if split is not None and split.weights.get(version, 0) > 0:
                raise Conflict(
                    f"version {version} of '{model}' still takes traffic; change the split first"
                )
            original = config_text(model_dir)
            served = policy_versions(read_config(model_dir), versions_on_disk(model_dir))
            if int(version) not in served:
                raise NotFound(f"model '{model}' does not serve version {version}")
            if len(served) == 1:
                raise Conflict(f"version {version} is the last version of '{model}'")
            kept = [v for v in served if v != int(version)]
            write_config_text(model_dir, with_served_versions(original, kept))
            try:
                await self._load(model)
            except GatewayError:
                write_config_text(model_dir, original)
                await self._load(model)
                raise
            await self._catalog.refresh(reloaded=[model])

    # -- helpers

    def _new_model_dir(self, model: str) -> Path:
        """Where a new model goes; 409 if there is one of that name, 400 for a bad name."""
        check_model_path(model)
        if not model or "/" in model or "\\" in model or model.startswith("."):
            raise LifecycleError(f"'{model}' cannot be a model name (a folder of the repository)")
        model_dir = self._repository / model
        if model_dir.exists():
            raise Conflict(
                f"model '{model}' exists; publish a new version of it instead "
                f"(gateway models publish {model} FILE)"
            )
        return model_dir

    def model_dir(self, model: str) -> Path:
        model_dir = self._repository / model
        if "/" in model or model.startswith(".") or not (model_dir / "config.pbtxt").is_file():
            raise NotFound(f"no model '{model}' in the repository")
        return model_dir

    def _ready(self, model: str) -> set[str]:
        view = self._catalog.get(model)
        return set(view.ready) if view else set()

    async def _warmed(
        self, model: str, replaced: str | None, version: str
    ) -> dict[str, object] | None:
        """The cache warm-up of `version` from `replaced`'s popular requests; None when
        there is nothing to warm from. A failed warm-up changes nothing but its report."""
        if self._warm_up_hook is None or replaced is None or replaced == version:
            return None
        try:
            return await self._warm_up_hook(model, replaced, version)
        except GatewayError as exc:
            return {"from": replaced, "to": version, "skipped": exc.message}

    def _artifact(self, model: str, version: str) -> str | None:
        """The SHA-256 of a version's model.onnx (what a release compares its file with)."""
        path = self._repository / model / version / "model.onnx"
        try:
            stat = path.stat()
        except OSError:
            return None
        known = self._artifacts.get(path)
        if known is not None and known[0] == (stat.st_size, stat.st_mtime_ns):
            return known[1]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        self._artifacts[path] = ((stat.st_size, stat.st_mtime_ns), digest)
        return digest

    def _serving(self, model: str) -> str | None:
        """The version that serves the model's traffic today: the last one promoted (or
        pinned by a publish), as the split records it, while the split still gives it
        traffic; else the version with most of its traffic; with no split, Triton's
        default."""
        split = self._traffic.get(model)
        if split is None:
            return self._default(model)
        if split.serving is not None and split.weights.get(split.serving, 0) > 0:
            return split.serving
        return split.primary()

    def _default(self, model: str) -> str | None:
        view = self._catalog.get(model)
        return view.default_version if view else None

    async def _store(self, model: str, split: TrafficSplit) -> None:
        try:
            await self._traffic.set(model, split)
        except StoreUnavailable as exc:
            raise self._unavailable() from exc

    def _thresholds_of(self, model: str) -> GateThresholds:
        """The model's gate thresholds: its config's parameters, else the gateway's."""
        config = read_config(self.model_dir(model))
        defaults = self._thresholds

        def number(name: str, default: float) -> float:
            return _number(config_parameter_from(config, name), default)

        return GateThresholds(
            number("quality_gate_min_agreement", defaults.min_agreement),
            number("quality_gate_min_cosine", defaults.min_cosine),
            int(number("quality_gate_min_shadow_requests", defaults.min_shadow_requests)),
        )

    async def _live_gate(
        self, model: str, candidate: str, current: str, thresholds: GateThresholds
    ) -> LiveAgreement | None:
        """The candidate's shadow figures against `current`: at least the required number
        of mirrored requests, and (whenever there are any) within the model's thresholds."""
        required = thresholds.min_shadow_requests
        try:
            if self._agreement is None:
                raise StoreUnavailable("no shadow agreement store")
            await self._agreement.flush()
            live = await self._agreement.read(model, candidate, current)
        except StoreUnavailable as exc:
            if required:
                raise self._unavailable() from exc
            return None
        count = live.requests if live else 0
        if count < required:
            raise QualityGateFailed(
                f"version {candidate} of '{model}' has answered {count} mirrored requests "
                f"against version {current}; the quality gate needs {required} (mirror traffic "
                "to it with a shadow in the traffic split, or promote with force)"
            )
        if live is None:
            return None
        if live.measure == COSINE:
            measure, value = "worst cosine", live.worst if live.worst is not None else 1.0
            threshold = thresholds.min_cosine
        else:
            measure, value = "label agreement", live.mean
            threshold = thresholds.min_agreement
        if value < threshold:
            raise QualityGateFailed(
                f"version {candidate} of '{model}' fails the quality gate against version "
                f"{current} on live traffic: {measure} {value:.4f} < {threshold} over "
                f"{live.requests} mirrored requests ({live.rows} rows); promote with force to "
                "override"
            )
        return live

    async def _live(self, model: str, candidate: str) -> dict[str, Any] | None:
        """The shadow figures of `candidate` against each version it was compared with."""
        if self._agreement is None:
            return None
        try:
            figures = {}
            for reference in await self._agreement.references(model, candidate):
                live = await self._agreement.read(model, candidate, reference)
                if live is not None:
                    figures[reference] = live.describe()
        except StoreUnavailable:
            return None
        return figures

    async def _warm_up(self, model_dir: Path, version: str) -> None:
        """A few requests to the new version (its probe set, or generated ones); it must
        answer them all."""
        probes = probe_requests(model_dir, version) or generated_probes(model_dir, version)
        request = probes[0]
        for _ in range(3):
            result = await self._triton.infer(request)
            if result.version != version:
                raise LifecycleError(f"Triton answered with version {result.version}")

    async def _restore(self, model_dir: Path, original: str, version: int) -> None:
        write_config_text(model_dir, original)
        shutil.rmtree(model_dir / str(version), ignore_errors=True)
        with contextlib.suppress(GatewayError):
            await self._load(model_dir.name)
        with contextlib.suppress(GatewayError):
            await self._catalog.refresh(reloaded=[model_dir.name])

    @contextlib.asynccontextmanager
    async def _exclusive(self, model: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(model, asyncio.Lock())
        async with lock, self._catalog.changing(model):
            token = secrets.token_hex(8)
            try:
                taken = await self._changes.lock(model, token, LOCK_TTL_MS)
            except StoreUnavailable as exc:
                raise self._unavailable() from exc
            if not taken:
                raise Conflict(f"another change to '{model}' is in progress; retry when it is done")
            try:
                yield
            finally:
                with contextlib.suppress(StoreUnavailable):
                    await self._changes.unlock(model, token)

    async def _load(self, model: str) -> None:
        """Have Triton (re)load `model` from the files on disk, and tell the other replicas."""
        await self._triton.control.load_model(model)
        try:
            await self._changes.reloaded(model)
        except StoreUnavailable:
            logger.warning(
                "could not tell other gateway replicas that model %s was reloaded (Redis is "
                "unavailable); they pause its caching until they see a reload themselves",
                model,
            )

    def _unavailable(self) -> ServiceUnavailable:
        return ServiceUnavailable("Redis is unavailable; nothing was changed", self._retry_after_s)


def _skipped(model: str, candidate: str, serving: str | None, force: bool) -> str | None:
    """Why a promotion runs no quality gate, or None when it runs one."""
    if force:
        return "promoted with force"
    if serving is None:
        return f"no version of '{model}' served its traffic before; nothing to compare with"
    if serving == candidate:
        return f"version {candidate} already serves the traffic of '{model}'"
    return None


def config_parameter_from(config: Any, name: str) -> str | None:
    value = config.parameters.get(name)
    return value.string_value if value is not None and value.string_value else None


def _number(text: str | None, default: float) -> float:
    try:
        return float(text) if text else default
    except ValueError:
        return default
