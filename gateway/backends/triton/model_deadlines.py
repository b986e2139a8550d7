"""How long one inference call of a model may take before the gateway gives up on it.

A model's deadline is, in order:
  - its config's `parameters { key: "inference_timeout_s" ... }`, when set (capped at
    GATEWAY_TRITON_TIMEOUT_S);
  - otherwise fitted to what was observed: GATEWAY_TRITON_DEADLINE_FACTOR times the p99 of its
    last successful calls, scaled up for a request with more rows than those calls had, and
    never under GATEWAY_TRITON_DEADLINE_MIN_S or over GATEWAY_TRITON_TIMEOUT_S;
  - GATEWAY_TRITON_TIMEOUT_S until MIN_SAMPLES calls have been seen (a model's first calls,
    often its slowest, set nothing).

So a model that answers in 5 ms gives up after 2 s, not 30, and one slow model cannot hold
this worker's connections to Triton; a model that needs 300 ms gets 3 s.

Only successful calls are observed, so only models Triton serves take memory here.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

WINDOW = 256  # calls per model the p99 is taken over
MIN_SAMPLES = 20
REFIT_EVERY = 32  # calls between two fits of the same model


@dataclass(slots=True)
class _Observed:
    seconds: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    seconds_per_row: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    since_fit: int = 0
    p99_s: float = 0.0
    p99_per_row_s: float = 0.0


class ModelDeadlines:
    """Per-model inference deadlines, fitted to each model's observed latency."""

    def __init__(self, ceiling_s: float, floor_s: float, factor: float) -> None:
        self.ceiling_s = ceiling_s
        self._floor_s = min(floor_s, ceiling_s)
        self._factor = factor
        self._models: dict[str, _Observed] = {}

    def observe(self, model: str, seconds: float, rows: int) -> None:
        """A successful call of `model` with `rows` rows (batch size) took `seconds`."""
        observed = self._models.get(model)
        if observed is None:
            observed = self._models[model] = _Observed()
        observed.seconds.append(seconds)
        observed.seconds_per_row.append(seconds / max(rows, 1))
        observed.since_fit += 1
        if len(observed.seconds) >= MIN_SAMPLES and (
            observed.since_fit >= REFIT_EVERY or not observed.p99_s
        ):
            observed.p99_s = _p99(observed.seconds)
            observed.p99_per_row_s = _p99(observed.seconds_per_row)
            observed.since_fit = 0

    def deadline_s(self, model: str, rows: int, configured_s: float | None = None) -> float:
        """The deadline of one call of `model` with `rows` rows."""
        if configured_s is not None:
            return min(configured_s, self.ceiling_s)
        observed = self._models.get(model)
        if observed is None or not observed.p99_s:
            return self.ceiling_s
        expected = max(observed.p99_s, observed.p99_per_row_s * max(rows, 1))
        return min(max(self._factor * expected, self._floor_s), self.ceiling_s)

    def fitted(self) -> dict[str, float]:
        """The fitted deadline of a one-row call of each observed model (for /admin)."""
        return {model: self.deadline_s(model, 1) for model in self._models}


def configured_deadline(text: str | None) -> float | None:
    """A config's `inference_timeout_s` in seconds; None when unset or not a positive number."""
    try:
        value = float(text or "")
    except ValueError:
        return None
    return value if value > 0 and value != float("inf") else None


def _p99(values: deque[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
