"""Why a lifecycle operation was refused (each a gateway error with its status)."""

from __future__ import annotations

from gateway.errors import BadRequest, GatewayError


class LifecycleError(BadRequest):
    """The operation cannot be done as asked (bad file, unknown version, ...): 400."""


class Conflict(GatewayError):
    """The operation conflicts with the current state (e.g. unloading a routed version)."""

    status = 409


class QualityGateFailed(Conflict):
    """The candidate's answers on the probe set differ too much from the current version's."""
