"""What the store knows about a key: its hash, scopes, limits and life cycle."""

from __future__ import annotations

from fnmatch import fnmatchcase

from pydantic import BaseModel, ConfigDict, Field


class KeyRecord(BaseModel):
    """One API key as stored (never with its secret)."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    hash: str = Field(repr=False)
    models: tuple[str, ...] = ()  # `infer` scope: model-name globs, e.g. "digits_*" or "*"
    admin: bool = False  # may use /admin
    rate_limit_per_second: float = 0.0  # 0: unlimited
    burst: int = 1
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    last_used_at: float | None = None
    tenant: str | None = None  # who owns the key (default: its name); cache namespace
    private_cache: bool = False  # cache entries visible to this tenant's keys only

    @property
    def tenant_name(self) -> str:
        return self.tenant or self.name

    def allows_model(self, model: str) -> bool:
        return any(fnmatchcase(model, pattern) for pattern in self.models)

    def is_live(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def public(self) -> dict[str, object]:
        """What an administrator may see: everything but the hash."""
        return self.model_dump(exclude={"hash"})
