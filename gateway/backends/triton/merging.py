"""Several Tritons' answers as one: repository indexes, statistics, queue lengths."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_PENDING = re.compile(r"^nv_inference_pending_request_count\{([^}]*)\}\s+(\S+)", re.M)
_MODEL_LABEL = re.compile(r'model="([^"]*)"')


def merge_indexes(indexes: Sequence[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One entry per (model, version): READY if any Triton has it READY, else the first
    Triton's entry."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for index in indexes:
        for entry in index:
            key = (entry["name"], str(entry.get("version", "")))
            if key not in merged or (
                entry.get("state") == "READY" and merged[key].get("state") != "READY"
            ):
                merged[key] = entry
    return list(merged.values())


def merge_statistics(per_triton: Sequence[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each version's statistics summed over the Tritons (counts and durations add up;
    `last_inference` is the latest; batch statistics add up per batch size)."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for stats in per_triton:
        for entry in stats:
            key = (entry["name"], str(entry.get("version", "")))
            merged[key] = _add(merged[key], entry) if key in merged else entry
    return list(merged.values())


def _add(left: Any, right: Any, field: str = "") -> Any:
    if isinstance(left, dict) and isinstance(right, dict):
        return {k: _add(left[k], right[k], k) if k in left else right[k] for k in right} | {
            k: v for k, v in left.items() if k not in right
        }
    if field == "last_inference":
        return max(left, right)
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left + right
    if isinstance(left, list) and isinstance(right, list) and field == "batch_stats":
        by_size = {item["batch_size"]: item for item in left}
        for item in right:
            size = item["batch_size"]
            by_size[size] = _add(by_size[size], item) if size in by_size else item
        return [by_size[size] for size in sorted(by_size)]
    return left


def pending_requests(metrics_text: str) -> dict[str, int]:
    """Requests waiting in Triton's queue per model (all versions), from its metrics."""
    pending: dict[str, int] = {}
    for labels, value in _PENDING.findall(metrics_text):
        model = _MODEL_LABEL.search(labels)
        if model:
            pending[model[1]] = pending.get(model[1], 0) + int(float(value))
    return pending
