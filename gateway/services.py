"""The long-lived clients a running gateway holds, opened and closed with the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from gateway.settings import Settings
from gateway.triton import TritonClient


@dataclass(frozen=True)
class Services:
    """Everything a request handler may use; one instance per app (per worker process)."""

    settings: Settings
    triton: TritonClient


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    if settings.triton_url is None or settings.triton_grpc_url is None:
        raise RuntimeError(
            "no Triton configured: set GATEWAY_TRITON_URL and GATEWAY_TRITON_GRPC_URL "
            "(or use `gateway up`, which starts an embedded Triton)"
        )
    triton = TritonClient(
        settings.triton_url,
        settings.triton_grpc_url,
        infer_timeout_s=settings.triton_timeout_s,
        control_timeout_s=settings.triton_control_timeout_s,
        retry_after_s=settings.retry_after_s,
    )
    try:
        yield Services(settings=settings, triton=triton)
    finally:
        await triton.close()
