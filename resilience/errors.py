"""Failures of a shared dependency (Redis) as the gateway and `auth` both see them."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """A call to Redis failed, timed out, or was skipped by an open circuit breaker."""


class StoreFull(StoreUnavailable):
    """Redis refused a write because it is full (maxmemory reached); it still answers."""
