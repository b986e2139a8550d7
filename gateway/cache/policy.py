"""What may be cached for a model, and what a request's Cache-Control allows.

A model's policy comes from, in order: `GATEWAY_CACHE_MODELS` (JSON, per model name), the
model config's `parameters` (`cache_enabled`, `cache_ttl_s`, `cache_max_entry_bytes`,
`cache_stale_if_error_s`, `cache_rows`, `cache_warm_up`, `cache_shared_across_tenants`),
then the global defaults
(`GATEWAY_CACHE_ENABLED`, `_TTL_S`, `_MAX_ENTRY_BYTES`, `_STALE_IF_ERROR_S`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field


class ModelCacheSettings(BaseModel):
    """Per-model overrides in GATEWAY_CACHE_MODELS."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool | None = None
    ttl_s: float | None = Field(default=None, gt=0)
    max_entry_bytes: int | None = Field(default=None, gt=0)
    stale_if_error_s: float | None = Field(default=None, ge=0)
    per_row: bool | None = None
    warm_up: bool | None = None
    shared_across_tenants: bool | None = None


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """The effective cache policy of one model."""

    enabled: bool
    ttl_s: float
    max_entry_bytes: int
    # How long past its TTL an entry may still answer when Triton cannot (RFC 5861's
    # stale-if-error); 0: never, for models whose answers must be fresh.
    stale_if_error_s: float = 0.0
    # An entry per row of a batch: the model declares its rows independent (the config's
    # `cache_rows: "independent"`), so a batch's answer is its rows' answers.
    per_row: bool = False
    # Before traffic moves to a version (promote, traffic split), replay the most frequent
    # recent requests of the version it replaces, so the new one starts with their entries.
    warm_up: bool = True
    # Entries shared by every tenant (the model's explicit opt-in): a tenant's hit may then
    # tell it that another tenant sent the same input. By default each tenant has its own.
    shared_across_tenants: bool = False


class Directive(Enum):
    """What the request's Cache-Control lets the gateway do."""

    READ_AND_WRITE = "read_and_write"
    WRITE_ONLY = "write_only"  # no-cache: ask Triton, but keep the answer
    NONE = "none"  # no-store: neither read nor write

    @classmethod
    def from_header(cls, value: bytes | None) -> Directive:
        if not value:
            return cls.READ_AND_WRITE
        tokens = {token.strip().lower() for token in value.decode("latin-1").split(",")}
        if "no-store" in tokens:
            return cls.NONE
        if "no-cache" in tokens:
            return cls.WRITE_ONLY
        return cls.READ_AND_WRITE


def resolve_policy(
    defaults: CachePolicy,
    override: ModelCacheSettings | None,
    parameter: dict[str, str | None],
) -> CachePolicy:
    """Combine the three sources; `parameter` holds the config's string values (or None)."""
    enabled = defaults.enabled
    ttl_s = defaults.ttl_s
    max_entry_bytes = defaults.max_entry_bytes
    stale_s = defaults.stale_if_error_s
    per_row = str(parameter.get("cache_rows") or "").strip().lower() == "independent"
    warm_up = str(parameter.get("cache_warm_up") or "true").strip().lower() not in FALSE
    shared = str(parameter.get("cache_shared_across_tenants") or "").strip().lower() in TRUE
    if parameter.get("cache_stale_if_error_s"):
        stale_s = _number(parameter["cache_stale_if_error_s"], stale_s, allow_zero=True)
    if parameter.get("cache_enabled") is not None:
        enabled = str(parameter["cache_enabled"]).strip().lower() in ("1", "true", "yes", "on")
    if parameter.get("cache_ttl_s"):
        ttl_s = _number(parameter["cache_ttl_s"], ttl_s)
    if parameter.get("cache_max_entry_bytes"):
        max_entry_bytes = int(_number(parameter["cache_max_entry_bytes"], max_entry_bytes))
    if override is not None:
        enabled = override.enabled if override.enabled is not None else enabled
        ttl_s = override.ttl_s or ttl_s
        max_entry_bytes = override.max_entry_bytes or max_entry_bytes
        if override.stale_if_error_s is not None:
            stale_s = override.stale_if_error_s
        if override.per_row is not None:
            per_row = override.per_row
        if override.warm_up is not None:
            warm_up = override.warm_up
        if override.shared_across_tenants is not None:
            shared = override.shared_across_tenants
    return CachePolicy(enabled, ttl_s, max_entry_bytes, stale_s, per_row, warm_up, shared)


FALSE = frozenset({"0", "false", "no", "off"})
TRUE = frozenset({"1", "true", "yes", "on"})


def allows_stale(cache_control: bytes | None) -> bool:
    """Whether the request lets a stale answer stand in when Triton fails: not with
    `Cache-Control: stale-if-error=0` (RFC 5861)."""
    if not cache_control:
        return True
    tokens = {token.strip().lower() for token in cache_control.decode("latin-1").split(",")}
    return "stale-if-error=0" not in tokens


def _number(text: str | None, fallback: float, allow_zero: bool = False) -> float:
    """A config parameter's number, or `fallback` when it is not one, or is negative (or
    zero, unless `allow_zero`)."""
    try:
        value = float(text or "")
    except ValueError:
        return fallback
    return value if value > 0 or (allow_zero and value == 0) else fallback
