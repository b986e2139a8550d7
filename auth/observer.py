"""How auth reports what happens to it, without knowing about metrics libraries."""

from __future__ import annotations

from typing import Protocol


class AuthObserver(Protocol):
    """Receives auth events; the gateway implements it with Prometheus metrics."""

    def store_degraded(self, degraded: bool) -> None:
        """Auth started (True) or stopped (False) serving from memory because Redis failed."""


class NullObserver:
    """Ignores every event."""

    def store_degraded(self, degraded: bool) -> None:
        pass
