"""A fresh install needs an admin key: `gateway up` makes one when none exists."""

from __future__ import annotations

import asyncio

import auth
from gateway.backends.redis.client import redis_client
from gateway.settings import Settings
from resilience import CircuitBreaker


def bootstrap_admin(settings: Settings) -> str:
    """Ensure an admin key exists; return what to tell the operator.

    With GATEWAY_ADMIN_KEY set, the gateway ensures that key itself at start-up. Without
    it, and with no live admin key in the store, a new admin key (access to every model) is
    created and its text returned: the only time it is shown.
    """
    if settings.admin_key is not None:
        return "admin key: the one in GATEWAY_ADMIN_KEY\n  export GATEWAY_KEY=$GATEWAY_ADMIN_KEY"
    if settings.key_store_url is None:
        raise RuntimeError("bootstrap_admin needs a key store")
    return asyncio.run(_bootstrap(settings, settings.key_store_url))


async def _bootstrap(settings: Settings, url: str) -> str:
    client = redis_client(url, timeout_s=5.0)
    try:
        service = auth.KeyService(
            auth.RedisKeyStore(client, CircuitBreaker("key store")),
            auth.KeyHasher(settings.key_pepper.get_secret_value().encode()),
        )
        if await service.has_live_admin():
            return (
                "admin key: one exists already in the key store (`gateway keys list`);\n"
                "  export GATEWAY_KEY=<a key with access to the models>"
            )
        issued = await service.create("bootstrap admin", models=["*"], admin=True)
    finally:
        await client.aclose()
    return (
        "admin key created (shown only this once; it may use every model and /admin):\n"
        f"  export GATEWAY_KEY={issued.key}"
    )
