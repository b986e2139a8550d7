"""A round of background work every few seconds, in a task of its own, until closed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from resilience import StoreUnavailable

logger = logging.getLogger(__name__)


class Repeating:
    """Runs `work` every `interval_s` seconds from `start()` until `close()`. A round that
    fails with one of `tolerated` (by default: Redis unavailable) is logged at debug as
    `skipped`, and the next round runs as usual."""

    def __init__(
        self,
        name: str,
        interval_s: float,
        work: Callable[[], Awaitable[None]],
        skipped: str,
        tolerated: tuple[type[Exception], ...] = (StoreUnavailable,),
    ) -> None:
        self._name = name
        self._interval_s = interval_s
        self._work = work
        self._skipped = skipped
        self._tolerated = tolerated
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self._work()
            except self._tolerated as exc:
                logger.debug("%s (%s)", self._skipped, type(exc).__name__)
