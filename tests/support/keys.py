"""The admin key every test gateway is started with (as GATEWAY_ADMIN_KEY)."""

from __future__ import annotations

from auth import ApiKey

ADMIN_KEY = str(ApiKey.generate())
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def auth_headers(key: str = ADMIN_KEY) -> dict[str, str]:
    """A new dict each call: tritonclient adds its own headers to the dict it is given."""
    return {"Authorization": f"Bearer {key}"}
