"""The long-lived clients a running gateway holds, opened and closed with the app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from opentelemetry import trace

import auth
from gateway.backends.redis.client import redis_client
from gateway.backends.triton import TritonClient
from gateway.backends.triton.health import TritonHealth
from gateway.backends.triton.model_deadlines import ModelDeadlines
from gateway.cache import (
    CachePolicy,
    EntryCodec,
    LockSettings,
    RedisTier,
    ResultCache,
    resolve_policy,
)
from gateway.control.catalog import ModelCatalog, config_parameter, repository_path
from gateway.control.lifecycle import ModelLifecycle, TrafficSplits
from gateway.control.lifecycle.service import GateThresholds
from gateway.control.lifecycle.shadow import ShadowTraffic
from gateway.control.lifecycle.shadow_agreement import ShadowAgreement
from gateway.control.model_changes import ModelChanges
from gateway.control.registry.follower import RegistryFollower
from gateway.control.registry.provenance import Provenance
from gateway.control.registry.sync import RegistrySync
from gateway.errors import GatewayError
from gateway.observability.metrics import Metrics
from gateway.observability.spans import Spans
from gateway.pipeline.access import Access
from gateway.pipeline.auth_throttle import FailedAuthThrottle
from gateway.pipeline.capacity import Capacity
from gateway.pipeline.dataplane import DataPlane, WarmUpBudget
from gateway.pipeline.embeddings import EmbeddingsPlane
from gateway.pipeline.inference import InferencePipeline
from gateway.pipeline.row_cache import RowCache
from gateway.pipeline.rows import RowBatcher
from gateway.runtime.stack_state import BackendRestarts
from gateway.settings import Settings
from resilience import CircuitBreaker, StoreUnavailable

logger = logging.getLogger(__name__)
CACHE_FLUSH_S = 2.0  # at shutdown, how long the cache's background Redis writes may take
KEY_STORE_RETRY_S = 1.0  # a key store unavailable at start: first retry
KEY_STORE_RETRY_MAX_S = 30.0  # and the longest wait between two tries


@dataclass(frozen=True)
class Services:
    """Everything a request handler may use; one instance per app (per worker process)."""

    settings: Settings
    metrics: Metrics
    spans: Spans
    triton: TritonClient
    triton_health: TritonHealth
    redis: aioredis.Redis
    access: Access
    keys: auth.KeyService
    cache: ResultCache
    catalog: ModelCatalog
    lifecycle: ModelLifecycle
    provenance: Provenance
    registry: RegistrySync | None  # with GATEWAY_MLFLOW_TRACKING_URI
    capacity: Capacity
    shadows: ShadowTraffic
    embeddings: EmbeddingsPlane
    pipeline: InferencePipeline

    def unready_reason(self, draining: bool) -> str | None:
        """Why this worker cannot serve now, or None: what `/v2/health/ready` and gRPC
        ServerReady answer. Ready while it can answer from its result cache or from
        Triton, until a drain starts. A Triton outage alone leaves it ready (cache hits
        and stale answers are what it serves then; Triton's own state is `/health/triton`
        and `gateway_triton_ready_endpoints`), and so does a worker at capacity (it sheds
        each request it cannot take with a 503; dropping out of rotation would move its
        load to the other replicas, which would then drop out in turn)."""
        if draining:
            return "this gateway is shutting down"
        if self.triton_health.ready or self.cache.can_answer:
            return None
        return "no Triton is ready and the result cache cannot answer"


@dataclass(frozen=True)
class _Control:
    """The control plane's parts that the data plane and the admin API use."""

    catalog: ModelCatalog
    traffic: TrafficSplits
    agreement: ShadowAgreement
    lifecycle: ModelLifecycle
    provenance: Provenance
    registry: RegistrySync | None


@asynccontextmanager
async def open_services(
    settings: Settings,
    metrics: Metrics,
    tracer_provider: trace.TracerProvider | None = None,
) -> AsyncIterator[Services]:
    """Open every client and background task of one worker; close them in reverse order."""
    if not settings.triton_sources:
        raise RuntimeError(
            "no Triton configured: set GATEWAY_TRITON_URL or GATEWAY_TRITON_URLS "
            "(or use `gateway up`, which starts an embedded Triton)"
        )
    if settings.redis_url is None or settings.key_store_url is None:
        raise RuntimeError(
            "no Redis configured: set GATEWAY_REDIS_URL (or use `gateway up`, which starts one)"
        )
    spans = Spans(
        tracer_provider, detailed=settings.trace_spans == "detailed", slow_s=settings.trace_slow_s
    )
    metrics.registry.register(BackendRestarts(settings.state_dir))  # from `gateway up`
    async with AsyncExitStack() as stack:
        triton, triton_health = await _open_triton(stack, settings, metrics, spans)
        cache_redis = redis_client(settings.redis_url, settings.redis_timeout_s)
        stack.push_async_callback(cache_redis.aclose)
        key_redis = cache_redis
        if settings.key_store_url != settings.redis_url:
            key_redis = redis_client(settings.key_store_url, settings.redis_timeout_s)
            stack.push_async_callback(key_redis.aclose)
        access, keys = await _open_auth(stack, settings, metrics, spans, key_redis, cache_redis)
        cache = _open_cache(stack, settings, metrics, spans, cache_redis)
        control = await _open_control(stack, settings, metrics, triton, cache_redis, cache)
        capacity = Capacity(
            settings.max_in_flight, settings.max_in_flight_per_key, settings.retry_after_s
        )
        shadows = ShadowTraffic(
            triton, control.agreement, metrics, capacity, settings.shadow_max_in_flight
        )
        stack.push_async_callback(shadows.close)  # before the agreement's last flush
        rows = RowCache(cache, RowBatcher(triton))
        dataplane = DataPlane(
            triton, control.catalog, cache, control.traffic, settings.cache_per_tenant, rows
        )
        budget = WarmUpBudget(
            settings.cache_warmup_requests,
            settings.cache_warmup_s,
            settings.cache_warmup_concurrency,
        )

        async def warm_up(model: str, replaced: str, version: str) -> dict[str, object]:
            return (await dataplane.warm(model, replaced, version, budget)).describe()

        if settings.cache_warmup_requests:
            control.lifecycle.warm_up_with(warm_up)
        embeddings = EmbeddingsPlane(
            control.catalog,
            rows,
            repository_path(settings.model_repository),
            settings.cache_per_tenant,
        )
        yield Services(
            settings=settings,
            metrics=metrics,
            spans=spans,
            triton=triton,
            triton_health=triton_health,
            redis=cache_redis,
            access=access,
            keys=keys,
            cache=cache,
            catalog=control.catalog,
            lifecycle=control.lifecycle,
            provenance=control.provenance,
            registry=control.registry,
            capacity=capacity,
            shadows=shadows,
            embeddings=embeddings,
            pipeline=InferencePipeline(
                capacity, access, dataplane, embeddings, shadows, control.catalog, metrics, spans
            ),
        )


async def _open_triton(
    stack: AsyncExitStack, settings: Settings, metrics: Metrics, spans: Spans
) -> tuple[TritonClient, TritonHealth]:
    """The Triton client (balancing, breakers, deadlines) and its health probe, started."""
    triton = TritonClient(
        settings.triton_sources,
        deadlines=ModelDeadlines(
            settings.triton_timeout_s,
            settings.triton_deadline_min_s,
            settings.triton_deadline_factor,
        ),
        control_timeout_s=settings.triton_control_timeout_s,
        retry_after_s=settings.retry_after_s,
        metrics=metrics,
        spans=spans,
        breaker_failures=settings.triton_breaker_failures,
        breaker_reset_s=settings.triton_breaker_reset_s,
        max_in_flight=settings.triton_max_in_flight,
        max_answer_bytes=settings.triton_max_answer_bytes,
        load_timeout_s=settings.triton_load_timeout_s,
        metrics_port=settings.triton_metrics_port,
    )
    stack.push_async_callback(triton.close)
    health = TritonHealth(
        triton,
        settings.triton_probe_s,
        min(0.5, settings.triton_control_timeout_s),
        settings.triton_resolve_s,
        on_probe=metrics.triton_ready_endpoints.set,
    )
    await health.start()
    stack.push_async_callback(health.close)
    return triton, health


async def _open_auth(
    stack: AsyncExitStack,
    settings: Settings,
    metrics: Metrics,
    spans: Spans,
    key_redis: aioredis.Redis,
    cache_redis: aioredis.Redis,
) -> tuple[Access, auth.KeyService]:
    """Authentication (following revocations), rate limits, the key service; the admin key
    of the settings ensured."""
    store = auth.RedisKeyStore(key_redis, _breaker("key store", settings, metrics))
    hasher = auth.KeyHasher(settings.key_pepper.get_secret_value().encode())
    authenticator = auth.Authenticator(
        store,
        hasher,
        remember_s=settings.auth_remember_s,
        stale_window_s=settings.auth_stale_window_s,
        observer=metrics,
    )
    stack.push_async_callback(authenticator.close)
    revocations = asyncio.get_running_loop().create_task(authenticator.follow(store.changed_keys))
    stack.push_async_callback(_cancel, revocations)
    rate_limiter = auth.RateLimiter(cache_redis, _breaker("rate limiter", settings, metrics))
    keys = auth.KeyService(store, hasher, rotation_overlap_s=settings.key_rotation_overlap_s)
    secret = settings.admin_key
    admin = auth.ApiKey.parse(secret.get_secret_value()) if secret is not None else None
    if not await _settle_key_store(store, keys, admin):  # Redis not up yet: keep trying
        settling = asyncio.get_running_loop().create_task(
            _keep_settling_key_store(store, keys, admin)
        )
        stack.push_async_callback(_cancel, settling)
    throttle = FailedAuthThrottle(settings.auth_failures_per_minute)
    access = Access(authenticator, rate_limiter, metrics, settings.retry_after_s, spans, throttle)
    return access, keys


def _open_cache(
    stack: AsyncExitStack,
    settings: Settings,
    metrics: Metrics,
    spans: Spans,
    cache_redis: aioredis.Redis,
) -> ResultCache:
    """The result cache, its writes flushed at shutdown, following other processes' purges."""
    cache_tier = RedisTier(cache_redis, _breaker("cache", settings, metrics))
    stack.callback(cache_tier.close)  # after the writes' flush below
    cache = ResultCache(
        settings.cache_local_max_bytes,
        settings.cache_local_ttl_s,
        cache_tier,
        EntryCodec(settings.cache_secret.get_secret_value().encode()),
        metrics,
        LockSettings(ttl_s=settings.cache_lock_ttl_s, wait_s=settings.cache_lock_wait_s),
        spans=spans,
    )
    stack.push_async_callback(cache.flush, CACHE_FLUSH_S)  # before Redis closes
    purges = asyncio.get_running_loop().create_task(cache.follow_purges())
    stack.push_async_callback(_cancel, purges)
    return cache


async def _open_control(
    stack: AsyncExitStack,
    settings: Settings,
    metrics: Metrics,
    triton: TritonClient,
    cache_redis: aioredis.Redis,
    cache: ResultCache,
) -> _Control:
    """The catalog of Triton's models, traffic splits, shadow agreement, the lifecycle and
    the MLflow registry, each refreshing in the background."""

    async def purge_version(model: str, version: str) -> None:
        with contextlib.suppress(StoreUnavailable):
            await cache.purge(model, version)

    changes = ModelChanges(cache_redis, _breaker("lifecycle", settings, metrics))
    catalog = ModelCatalog(
        triton,
        repository_path(settings.model_repository),
        settings.catalog_refresh_s,
        _policy_resolver(settings),
        on_artifact_change=purge_version,
        shared=changes,
    )
    triton.label_models_with(catalog.metric_label)
    try:
        await catalog.refresh()
    except GatewayError as exc:
        logger.warning("no view of Triton's models yet (%s); requests bypass the cache", exc)
    catalog.start()
    stack.push_async_callback(catalog.close)
    traffic = TrafficSplits(
        cache_redis, _breaker("traffic", settings, metrics), settings.catalog_refresh_s
    )
    with contextlib.suppress(StoreUnavailable):
        await traffic.refresh()
    traffic.start()
    stack.push_async_callback(traffic.close)
    provenance = Provenance(cache_redis, _breaker("registry", settings, metrics))
    agreement = ShadowAgreement(cache_redis, _breaker("shadow", settings, metrics))
    agreement.start()
    stack.push_async_callback(agreement.close)
    lifecycle = ModelLifecycle(
        settings.model_repository.resolve(),
        triton,
        catalog,
        traffic,
        changes,
        GateThresholds(
            settings.quality_gate_min_agreement,
            settings.quality_gate_min_cosine,
            settings.quality_gate_min_shadow_requests,
        ),
        settings.retry_after_s,
        agreement,
    )
    registry = _registry_sync(settings, provenance, lifecycle, traffic)
    if registry is not None and settings.mlflow_sync:
        follower = RegistryFollower(
            registry, cache_redis, settings.mlflow_sync, settings.mlflow_sync_s
        )
        follower.start()
        stack.push_async_callback(follower.close)
    return _Control(catalog, traffic, agreement, lifecycle, provenance, registry)


def _registry_sync(
    settings: Settings, provenance: Provenance, lifecycle: ModelLifecycle, traffic: TrafficSplits
) -> RegistrySync | None:
    if settings.mlflow_tracking_uri is None:
        return None
    from gateway.control.registry.mlflow_source import MlflowRegistry  # the `mlflow` extra

    return RegistrySync(
        MlflowRegistry(settings.mlflow_tracking_uri),
        provenance,
        lifecycle,
        traffic,
        champion=settings.mlflow_champion_alias,
        challenger=settings.mlflow_challenger_alias,
        canary_percent=settings.mlflow_canary_percent,
    )


def _policy_resolver(settings: Settings) -> Any:
    defaults = CachePolicy(
        settings.cache_enabled,
        settings.cache_ttl_s,
        settings.cache_max_entry_bytes,
        settings.cache_stale_if_error_s,
    )
    names = (
        "cache_enabled",
        "cache_ttl_s",
        "cache_max_entry_bytes",
        "cache_stale_if_error_s",
        "cache_rows",
        "cache_warm_up",
        "cache_shared_across_tenants",
    )

    def policy(model: str, config: Mapping[str, Any]) -> CachePolicy:
        parameters = {name: config_parameter(config, name) for name in names}
        return resolve_policy(defaults, settings.cache_models.get(model), parameters)

    return policy


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _breaker(name: str, settings: Settings, metrics: Metrics) -> CircuitBreaker:
    """A breaker for one use of Redis."""
    return _gauged_breaker(
        f"Redis ({name})",
        name.replace(" ", "_") + "_circuit",
        metrics,
        settings.redis_breaker_failures,
        settings.redis_breaker_reset_s,
    )


def _gauged_breaker(
    name: str, dependency: str, metrics: Metrics, failures: int, reset_s: float
) -> CircuitBreaker:
    """A breaker whose state is `gateway_degraded{dependency=...}`."""
    gauge = metrics.degraded.labels(dependency)
    gauge.set(0)
    return CircuitBreaker(
        name,
        failure_threshold=failures,
        reset_after_s=reset_s,
        on_change=lambda healthy: gauge.set(0 if healthy else 1),
    )


async def _settle_key_store(
    store: auth.RedisKeyStore, keys: auth.KeyService, admin: auth.ApiKey | None
) -> bool:
    """Mark the key store as in use (its sentinel, saying so when it holds no key) and put
    the configured admin key in it; False while the store is unavailable."""
    try:
        empty = await store.claim()
        record = await keys.ensure_admin(admin) if admin is not None else None
    except StoreUnavailable:
        return False
    if empty:
        logger.warning(
            "the key store holds no key: a new store, or one whose data was lost "
            "(then restore the keys: `gateway keys import`, or a Redis backup)"
        )
    if record is not None and record.revoked_at is not None:
        logger.warning("the configured admin key %s is revoked", record.id)
    return True


async def _keep_settling_key_store(
    store: auth.RedisKeyStore, keys: auth.KeyService, admin: auth.ApiKey | None
) -> None:
    """Try `_settle_key_store` again, KEY_STORE_RETRY_S apart and then up to twice as long
    each time (at most KEY_STORE_RETRY_MAX_S), until the store answers: a gateway started
    before its Redis claims the store and gets its admin key once Redis is up, without a
    restart."""
    logger.warning(
        "could not settle the key store (admin key, sentinel): it is unavailable; trying again"
    )
    delay = KEY_STORE_RETRY_S
    while True:
        await asyncio.sleep(delay)
        if await _settle_key_store(store, keys, admin):
            logger.info("the key store is settled now (admin key, sentinel)")
            return
        delay = min(delay * 2, KEY_STORE_RETRY_MAX_S)
