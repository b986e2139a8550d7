"""`TritonControl`: Triton's control API (health, metadata, config, statistics, the model
repository) over several Tritons as over one.

    metadata, config, readiness   from a ready Triton that has the model
    repository index, statistics  merged over all that answer (`merging.py`)
    model loads and unloads       on every Triton (the repository is shared storage); any
                                  failure is raised, so the lifecycle rolls the change back
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import orjson

from gateway.backends.triton.endpoint import Endpoint
from gateway.backends.triton.errors import http_errors, raise_for_http_status
from gateway.backends.triton.merging import merge_indexes, merge_statistics
from gateway.backends.triton.model_deadlines import ModelDeadlines
from gateway.backends.triton.paths import model_path, segment
from gateway.errors import TritonUnavailable


class TritonControl:
    """The control calls, to the Tritons `endpoints()` names at the time of each call."""

    def __init__(
        self,
        endpoints: Callable[[], list[Endpoint]],
        sources: Sequence[str],
        deadlines: ModelDeadlines,
        retry_after_s: int,
        load_timeout_s: float | None = None,
    ) -> None:
        self._endpoints = endpoints
        self._sources = sources
        self.deadlines = deadlines
        self._retry_after_s = retry_after_s
        self._load_timeout_s = load_timeout_s or deadlines.ceiling_s

    async def server_metadata(self) -> dict[str, Any]:
        return await self._get_json("/v2")

    async def model_metadata(self, model: str, version: str = "") -> dict[str, Any]:
        return await self._get_json(model_path(model, version), model, version)

    async def model_config(self, model: str, version: str = "") -> dict[str, Any]:
        return await self._get_json(model_path(model, version) + "/config", model, version)

    async def is_model_ready(self, model: str, version: str = "") -> bool:
        with http_errors(self._retry_after_s):
            endpoint = self._control(model, version)
            response = await endpoint.http.get(model_path(model, version) + "/ready")
        return response.status_code == 200

    async def repository_index(self) -> list[dict[str, Any]]:
        """Every model version any Triton knows of, with its state: READY where one has it
        READY, else the first Triton's state (UNAVAILABLE, ...)."""
        indexes = await self._from_each("POST", "/v2/repository/index", {})
        return merge_indexes(indexes)

    async def model_statistics(self, model: str = "", version: str = "") -> list[dict[str, Any]]:
        """Per loaded version (of every model, or of `model`), summed over the Tritons:
        inference and execution counts, which restart on a reload, and queue and compute
        times."""
        path = model_path(model, version) + "/stats" if model else "/v2/models/stats"
        documents = await self._from_each("GET", path)
        return merge_statistics([d.get("model_stats", []) for d in documents])

    async def load_model(self, model: str) -> None:
        """(Re)load a model on every Triton (explicit model control; each rereads changed
        files from the shared repository); fails if any of them fails."""
        path = f"/v2/repository/models/{segment(model)}/load"
        await self._on_every("POST", path, {})

    async def unload_model(self, model: str) -> None:
        path = f"/v2/repository/models/{segment(model)}/unload"
        await self._on_every("POST", path, {})

    def _control(self, model: str = "", version: str = "") -> Endpoint:
        """The Triton a control call goes to: a ready one with the model, else any."""
        if not self._endpoints():
            raise TritonUnavailable(
                f"no Triton found at {', '.join(self._sources)}", self._retry_after_s
            )
        answering = [e for e in self._endpoints() if e.probe_ready and not e.breaker.is_open]
        serving = [e for e in answering if not model or e.serves(model, version)]
        return (serving or answering or self._endpoints())[0]

    async def _get_json(self, path: str, model: str = "", version: str = "") -> dict[str, Any]:
        document: dict[str, Any] = await self._json(self._control(model, version), "GET", path)
        return document

    async def _on_every(self, method: str, path: str, body: Any) -> list[Any]:
        """A model load or unload on every Triton; any failure is raised (the lifecycle then
        rolls the change back)."""
        targets = self._endpoints() or [self._control()]
        calls = (self._json(e, method, path, body, load=True) for e in targets)
        return list(await asyncio.gather(*calls))

    async def _from_each(self, method: str, path: str, body: Any = None) -> list[Any]:
        """The same question to each Triton whose breaker is closed: the answers of those
        that gave one (a Triton down or without the model leaves the others' answers); the
        first failure when none answered."""
        targets = [e for e in self._endpoints() if not e.breaker.is_open] or [self._control()]
        results = await asyncio.gather(
            *(self._json(e, method, path, body) for e in targets), return_exceptions=True
        )
        answers = [r for r in results if not isinstance(r, BaseException)]
        if answers:
            return answers
        raise next(r for r in results if isinstance(r, BaseException))  # every one failed

    async def _json(
        self, endpoint: Endpoint, method: str, path: str, body: Any = None, load: bool = False
    ) -> Any:
        # Loading a model can take much longer than a metadata call (GATEWAY_TRITON_LOAD_TIMEOUT_S).
        timeout = self._load_timeout_s if load else httpx.USE_CLIENT_DEFAULT
        with http_errors(self._retry_after_s):
            response = await endpoint.http.request(method, path, json=body, timeout=timeout)
        raise_for_http_status(response, self._retry_after_s)
        return orjson.loads(response.content) if response.content else None
