"""Head sampling of inference requests, drawn by `Spans` before the SDK is called.

With `parentbased_traceidratio` (the production setting in deploy/), a request that carries
no `traceparent` is drawn before any span is built: one not drawn costs nothing (the SDK
would build a non-recording span and context for it); a caller's sampled or unsampled
`traceparent` is followed as the parent-based sampler does.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from typing import Any

from opentelemetry.sdk.trace import TracerProvider, sampling

# Set while `Spans` starts a root span it has drawn itself: the sampler then records it.
DRAWN: ContextVar[bool] = ContextVar("gateway_trace_drawn", default=False)


class _DrawnOrRatio(sampling.Sampler):
    """Roots that `Spans` drew are sampled; other roots (the routes FastAPI's
    instrumentation traces) by trace-id ratio, as `parentbased_traceidratio` would."""

    def __init__(self, ratio: float) -> None:
        self._ratio = sampling.TraceIdRatioBased(ratio)

    def should_sample(self, *args: Any, **kwargs: Any) -> sampling.SamplingResult:
        chosen = sampling.ALWAYS_ON if DRAWN.get() else self._ratio
        return chosen.should_sample(*args, **kwargs)

    def get_description(self) -> str:
        return f"DrawnByGatewayOr{self._ratio.get_description()}"


class HeadSampledTracerProvider(TracerProvider):
    """A provider whose inference requests' root spans are drawn by `Spans` with
    `root_ratio` before the SDK is called (see _DrawnOrRatio)."""

    def __init__(self, root_ratio: float, **options: Any) -> None:
        super().__init__(sampler=sampling.ParentBased(_DrawnOrRatio(root_ratio)), **options)
        self.root_ratio = root_ratio


def root_ratio_from_environment() -> float | None:
    """The ratio of `parentbased_traceidratio`, drawn ahead of the SDK; None otherwise."""
    if os.environ.get("OTEL_TRACES_SAMPLER", "").strip() != "parentbased_traceidratio":
        return None
    try:
        ratio = float(os.environ.get("OTEL_TRACES_SAMPLER_ARG", "1.0"))
    except ValueError:
        return 1.0  # as the SDK reads an unparsable argument
    return min(max(ratio, 0.0), 1.0)
