"""What a request's answer is cached under: the version it resolves to, that version's
fingerprint, and the tenant whose entries it may see."""

from __future__ import annotations

from dataclasses import dataclass

from auth import KeyRecord
from gateway.control.catalog import ModelView


@dataclass(frozen=True, slots=True)
class Target:
    """The cacheable version a request resolves to."""

    view: ModelView
    version: str
    fingerprint: str

    @classmethod
    def of(cls, view: ModelView | None, version: str) -> Target | None:
        """The target of `version` ("" : the model's default), or None when the model's
        cache is off or the version has no fingerprint (not READY, or unknown)."""
        if view is None or not view.cache_policy.enabled:
            return None
        resolved = version or view.default_version
        fingerprint = view.fingerprints.get(resolved) if resolved else None
        if resolved is None or fingerprint is None:
            return None
        return cls(view, resolved, fingerprint)


def cache_tenant(key: KeyRecord, per_tenant: bool, view: ModelView | None) -> str:
    """The tenant whose cache entries `key` sees ("": the shared cache). Each tenant has
    its own (`per_tenant`, GATEWAY_CACHE_PER_TENANT, by default), unless the model shares
    its entries across tenants (its policy's `shared_across_tenants`); a key with a private
    cache never shares."""
    if key.private_cache:
        return key.tenant_name
    shared = view is not None and view.cache_policy.shared_across_tenants
    return key.tenant_name if per_tenant and not shared else ""
