"""Registry aliases drive Triton versions and traffic.

    sync(model, registered_model)
      every version an alias points at and Triton lacks   -> published (validation, warm-up,
                                                              atomicity of any publish)
      @champion (GATEWAY_MLFLOW_CHAMPION_ALIAS)            -> promoted: the quality gate,
                                                              then all traffic; a refusal is
                                                              recorded as the registry tag
                                                              `gateway.quality_gate` on that
                                                              version, and traffic stays
      @challenger (GATEWAY_MLFLOW_CHALLENGER_ALIAS)        -> GATEWAY_MLFLOW_CANARY_PERCENT
                                                              of the traffic; its alias
                                                              deleted: all back to champion
      no @champion                                          -> nothing changes

Moving an alias back is a rollback: the version it names again is promoted again. Changes
go through `ModelLifecycle`, so they take its per-model lock (one change at a time, across
replicas) and every replica sees them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace

from gateway.control.lifecycle import ModelLifecycle, TrafficSplits
from gateway.control.lifecycle.errors import QualityGateFailed
from gateway.control.registry.mlflow_source import MlflowRegistry, RegistryVersion
from gateway.control.registry.provenance import Provenance

logger = logging.getLogger(__name__)

GATE_TAG = "gateway.quality_gate"


@dataclass
class SyncReport:
    model: str
    registered_model: str
    published: dict[str, str] = field(default_factory=dict)  # registry version -> Triton's
    traffic: dict[str, int] | None = None
    refused: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "registered_model": self.registered_model,
            "published": self.published,
            "traffic": self.traffic,
            "refused": self.refused,
        }


class RegistrySync:
    def __init__(
        self,
        registry: MlflowRegistry,
        provenance: Provenance,
        lifecycle: ModelLifecycle,
        traffic: TrafficSplits,
        *,
        champion: str,
        challenger: str,
        canary_percent: int,
    ) -> None:
        self._registry = registry
        self._provenance = provenance
        self._lifecycle = lifecycle
        self._traffic = traffic
        self._champion = champion
        self._challenger = challenger
        self._canary = canary_percent

    async def publish(self, model: str, uri: str) -> tuple[str, RegistryVersion]:
        """Publish the registry version `uri` names as the next Triton version."""
        source = await asyncio.to_thread(self._registry.resolve, uri)
        return await self._publish(model, source), source

    async def sync(self, model: str, registered_model: str) -> SyncReport:
        report = SyncReport(model, registered_model)
        aliases = await asyncio.to_thread(self._registry.aliases, registered_model)
        known: dict[str, str] = {}  # registry version -> Triton version (the latest, if several)
        for triton, source in sorted((await self._provenance.of_model(model)).items(), key=_number):
            if source.registered_model == registered_model:
                known[source.version] = triton
        for alias in (self._champion, self._challenger):
            version = aliases.get(alias)
            if version is not None and version not in known:
                source = await asyncio.to_thread(
                    self._registry.resolve, f"models:/{registered_model}/{version}"
                )
                known[version] = await self._publish(model, source)
                report.published[version] = known[version]
        champion_version = aliases.get(self._champion)
        if champion_version is None:
            return report
        champion = known[champion_version]
        current = self._traffic.get(model)
        if current is None or current.primary() != champion:
            try:
                await self._lifecycle.promote(model, champion, force=False)
            except QualityGateFailed as exc:
                source = RegistryVersion(registered_model, champion_version, "")
                await asyncio.to_thread(self._registry.tag, source, GATE_TAG, exc.message)
                report.refused = exc.message
                return report
        challenger_version = aliases.get(self._challenger)
        weights = {champion: 100}
        if challenger_version is not None and known[challenger_version] != champion:
            weights = {champion: 100 - self._canary, known[challenger_version]: self._canary}
        current = self._traffic.get(model)
        if current is None or current.weights != weights:
            sticky = current.sticky if current else False
            await self._lifecycle.split(model, weights, sticky)
        report.traffic = weights
        return report

    async def _publish(self, model: str, source: RegistryVersion) -> str:
        model_dir = self._lifecycle.model_dir(model)
        data = await asyncio.to_thread(self._registry.onnx_bytes, source, model_dir)
        version = str(await self._lifecycle.publish(model, data))
        await self._provenance.record(model, version, source)
        span = trace.get_current_span()
        span.set_attribute("gateway.registry.model", source.registered_model)
        span.set_attribute("gateway.registry.version", source.version)
        span.set_attribute("gateway.registry.run_id", source.run_id)
        logger.info(
            "published %s version %s from %s version %s (run %s)",
            model,
            version,
            source.registered_model,
            source.version,
            source.run_id,
            extra={"fields": {"model": model, "version": version, "registry": source.as_dict()}},
        )
        return version


def _number(item: tuple[str, RegistryVersion]) -> int:
    return int(item[0]) if item[0].isdigit() else 0
