"""`/admin/keys`: create, list, revoke and rotate API keys (admin scope).

The full key appears once, in the answer to create or rotate; listing shows no secrets and
no hashes.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

import auth
from gateway.errors import NotFound, ServiceUnavailable
from gateway.rest.deps import AdminGrant, ServicesDep, json_response
from gateway.services import Services
from resilience import StoreFull, StoreUnavailable

T = TypeVar("T")

router = APIRouter(prefix="/admin/keys", tags=["admin"])


class CreateKey(BaseModel):
    """Body of `POST /admin/keys`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    models: list[str] = Field(default_factory=list, description="model-name globs for `infer`")
    admin: bool = False
    rate_limit_per_second: float | None = Field(default=None, ge=0, description="0: unlimited")
    burst: int | None = Field(default=None, ge=1)
    expires_in_seconds: float | None = Field(default=None, gt=0)
    tenant: str | None = Field(default=None, min_length=1, max_length=200)
    private_cache: bool = Field(
        default=False, description="cache entries shared only among this tenant's keys"
    )


class RotateKey(BaseModel):
    """Optional body of `POST /admin/keys/{id}/rotate`."""

    model_config = ConfigDict(extra="forbid")

    overlap_seconds: float | None = Field(default=None, ge=0)


def _issued(issued: auth.IssuedKey) -> dict[str, object]:
    return {**issued.record.public(), "key": str(issued.key)}


@router.post("", status_code=201)
async def create(body: CreateKey, services: ServicesDep, _: AdminGrant) -> Response:
    rate = body.rate_limit_per_second
    if rate is None:
        rate = services.settings.default_rate_limit_per_second
    issued = await _store_call(
        services.keys.create(
            body.name,
            models=body.models,
            admin=body.admin,
            rate_limit_per_second=rate,
            burst=body.burst,
            expires_in_s=body.expires_in_seconds,
            tenant=body.tenant,
            private_cache=body.private_cache,
        ),
        services,
    )
    return json_response(_issued(issued), 201)


@router.get("")
async def list_keys(services: ServicesDep, _: AdminGrant) -> Response:
    records = await _store_call(services.keys.list(), services)
    return json_response({"keys": [record.public() for record in records]})


@router.delete("/{key_id}")
async def revoke(key_id: str, services: ServicesDep, _: AdminGrant) -> Response:
    record = await _store_call(services.keys.revoke(key_id), services)
    services.access.forget(key_id)
    return json_response(record.public())


@router.post("/{key_id}/rotate", status_code=201)
async def rotate(
    key_id: str, services: ServicesDep, _: AdminGrant, body: RotateKey | None = None
) -> Response:
    overlap = body.overlap_seconds if body is not None else None
    issued, old = await _store_call(services.keys.rotate(key_id, overlap), services)
    services.access.forget(key_id)
    return json_response({**_issued(issued), "replaces": old.public()}, 201)


async def _store_call(operation: Awaitable[T], services: Services) -> T:
    """Await a key-store operation; its failures become 404 or 503."""
    try:
        return await operation
    except auth.UnknownKey as exc:
        raise NotFound(f"no API key with id '{exc.args[0]}'") from exc
    except StoreFull as exc:
        raise ServiceUnavailable(
            "the key store is full (Redis reached its maxmemory): the change was not made; "
            "free memory in Redis or raise its maxmemory, then retry",
            services.settings.retry_after_s,
        ) from exc
    except StoreUnavailable as exc:
        raise ServiceUnavailable(
            "the key store is unavailable; retry shortly", services.settings.retry_after_s
        ) from exc
