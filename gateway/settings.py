"""The gateway's settings, read from `GATEWAY_*` environment variables (or a `.env` file).

`GATEWAY_TRITON_URL` (Triton's HTTP endpoint) and `GATEWAY_REDIS_URL` point at external
services; left unset, `gateway up` starts embedded ones and fills them in. `gateway serve`
(production) needs them set. With `GATEWAY_ENVIRONMENT=production` the settings refuse to
load while an unsafe default is left in place.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from auth import ApiKey, MalformedKey
from gateway.backends.redis.client import check_redis_url
from gateway.cache.policy import ModelCacheSettings

Environment = Literal["development", "production"]

_TRITON_URL = re.compile(r"^http://(\[[0-9a-fA-F:]+\]|[^/:\[\]#]+)(:\d+)?(/[^#]*)?$")
# Refused outside development: anyone reading the source knows them.
DEVELOPMENT_PEPPER = "development-pepper-not-for-production"
DEVELOPMENT_CACHE_SECRET = "development-cache-secret-not-for-production"  # noqa: S105


class Settings(BaseSettings):
    """Everything the gateway can be told from outside; immutable once loaded."""

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", env_file=".env", extra="ignore", frozen=True
    )

    environment: Environment = "development"

    triton_url: str | None = Field(
        default=None,
        description="Triton's HTTP endpoint, e.g. http://triton:8000 (plain HTTP; a path "
        "prefix is kept)",
    )
    triton_urls: str | None = Field(
        default=None,
        description="Several Tritons, comma-separated: http://host:port[/path] each, or "
        "dns+http://name:port for one Triton per address a DNS name resolves to (a headless "
        "Service); `#metrics=PORT` after one names its metrics port "
        "(gateway.backends.triton.discovery)",
    )
    triton_metrics_port: int = Field(
        default=8002,
        ge=0,
        le=65535,
        description="Triton's metrics port, read for its queue per model when balancing "
        "over several Tritons (0: not read)",
    )
    triton_resolve_s: float = Field(
        default=10.0, gt=0, description="How often DNS sources in GATEWAY_TRITON_URLS resolve"
    )
    triton_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="The longest an inference call to Triton may take (any model's deadline "
        "is capped at it; a model's deadline until its latency is known)",
    )
    triton_load_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="The longest a model load may take on Triton (a publish, a promotion, a "
        "rollback wait for it): on GPUs, TensorRT builds its engines while a model loads",
    )
    triton_deadline_factor: float = Field(
        default=10.0,
        ge=1,
        description="A model's inference deadline, unless its config sets "
        "`inference_timeout_s`: this many times the p99 of its recent calls",
    )
    triton_deadline_min_s: float = Field(
        default=2.0, gt=0, description="The shortest deadline fitted to a model's latency"
    )
    triton_control_timeout_s: float = Field(
        default=5.0, gt=0, description="Deadline of metadata, config and health calls to Triton"
    )
    triton_max_answer_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="Largest answer read from Triton; a larger one is a 502, not read further",
    )
    triton_max_in_flight: int = Field(
        default=48,
        ge=0,
        description="Inference calls one worker keeps waiting on Triton; more get 503 at once. "
        "Below GATEWAY_MAX_IN_FLIGHT, so misses waiting on a slow or sick Triton leave room "
        "for cache hits (0: no limit)",
    )
    triton_tracing: bool = Field(
        default=False,
        description="`gateway up`: let the embedded Triton (2.51) send its own spans too; it "
        "can crash under load with tracing on (Triton issue 7795, fixed in 2.57)",
    )
    triton_probe_s: float = Field(
        default=0.5,
        gt=0,
        description="How often Triton's readiness is probed (readiness "
        "answers from the last probe; two failed probes open Triton's breaker)",
    )
    triton_breaker_failures: int = Field(
        default=3, ge=1, description="Consecutive failed calls to Triton that open its breaker"
    )
    triton_breaker_reset_s: float = Field(
        default=2.0,
        gt=0,
        description="How long Triton's open breaker fails misses at once before a trial call",
    )
    retry_after_s: int = Field(
        default=1, ge=0, description="Retry-After sent with 503 when Triton is unreachable"
    )

    redis_url: str | None = Field(default=None, description="redis://host:port/db")
    auth_redis_url: str | None = Field(
        default=None, description="Separate Redis for API keys (default: GATEWAY_REDIS_URL)"
    )
    redis_timeout_s: float = Field(
        default=0.25, gt=0, description="Deadline of every Redis call (connect and command)"
    )
    redis_breaker_failures: int = Field(
        default=3, ge=1, description="Consecutive Redis failures that open the circuit breaker"
    )
    redis_breaker_reset_s: float = Field(
        default=5.0, gt=0, description="How long an open breaker skips Redis before a trial"
    )

    key_pepper: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_PEPPER),
        description="Server-side secret mixed into every key hash (HMAC-SHA256)",
    )
    admin_key: SecretStr | None = Field(
        default=None, description="A key (from `gateway keys generate`) ensured as admin at start"
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="When set, GET /metrics answers only a scrape that presents it as "
        "`Authorization: Bearer <token>` (401 otherwise); unset, /metrics is open",
    )
    auth_failures_per_minute: int = Field(
        default=120,
        ge=0,
        description="Failed authentications a client address may have in a minute; past "
        "them its requests get 429 until the minute ends (0: no limit)",
    )
    auth_remember_s: float = Field(
        default=5.0, ge=0, description="How long a verified key is trusted without Redis"
    )
    auth_stale_window_s: float = Field(
        default=300.0, ge=0, description="Extra time remembered keys work while Redis is down"
    )
    default_rate_limit_per_second: float = Field(
        default=0.0, ge=0, description="Rate limit of keys created without one (0: unlimited)"
    )
    key_rotation_overlap_s: float = Field(
        default=86_400.0, ge=0, description="How long a rotated key keeps working"
    )

    max_in_flight: int = Field(
        default=64,
        ge=0,
        description="Inference requests one worker serves at once; more get 503 (0: no limit)",
    )
    max_in_flight_per_key: int = Field(
        default=32,
        ge=0,
        description="Inference requests one key may have in progress on one worker; more get "
        "429 (0: no limit beyond GATEWAY_MAX_IN_FLIGHT)",
    )
    reuse_port: bool = Field(
        default=True,
        description="With several workers, a listening socket per worker (SO_REUSEPORT), "
        "so connections spread evenly; false: one socket shared by all",
    )
    header_timeout_s: float = Field(
        default=10.0, gt=0, description="Time a client has to send a request's headers (408)"
    )
    max_header_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Largest request head (request line and headers), in bytes (431)",
    )
    max_headers: int = Field(default=100, ge=8, description="Most headers in a request (431)")
    body_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Time a client has to send a body, plus its length at "
        "GATEWAY_BODY_MIN_RATE (408 and the connection closed)",
    )
    body_min_rate: int = Field(
        default=64 * 1024, gt=0, description="Slowest body upload allowed, bytes per second"
    )
    keep_alive_s: float = Field(
        default=75.0,
        gt=0,
        description="How long an idle kept-alive connection stays open: longer than the 60 s "
        "load balancers keep idle upstream connections, so the gateway never closes one a "
        "balancer is about to reuse (a POST would see a 502)",
    )
    drain_delay_s: float = Field(
        default=0.0,
        ge=0,
        description="On SIGTERM, how long the gateway keeps serving while it says it is not "
        "ready and closes each connection after its response, so that a load balancer takes "
        "it out of rotation before it stops (gateway.runtime.draining); 0: stop at once",
    )
    shutdown_grace_s: float = Field(
        default=10.0,
        gt=0,
        description="On SIGTERM, how long requests in progress may finish before they are "
        "cancelled (closing the clients gets as long again; then a worker is killed)",
    )
    grpc_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Serve the KServe v2 gRPC protocol on this port too (`gateway serve` "
        "and `gateway up` set it: --grpc-port)",
    )
    grpc_host: str = Field(default="127.0.0.1", description="The gRPC server's address")
    grpc_max_streams: int = Field(
        default=100, ge=1, description="Streams one gRPC connection may have open at once"
    )
    grpc_max_calls: int = Field(
        default=256,
        ge=1,
        description="gRPC calls one worker serves at once; more are RESOURCE_EXHAUSTED",
    )
    grpc_keepalive_s: float = Field(
        default=30.0, gt=0, description="How often the gRPC server pings an idle client"
    )
    tls_cert_file: Path | None = Field(
        default=None,
        description="Serve HTTPS with this PEM certificate (chain) file; with GATEWAY_TLS_KEY_FILE",
    )
    tls_key_file: Path | None = Field(
        default=None, description="The PEM private key of GATEWAY_TLS_CERT_FILE"
    )
    forwarded_allow_ips: str | None = Field(
        default=None,
        description="Proxies whose X-Forwarded-For/-Proto are believed: comma-separated "
        "addresses or networks, or * (uvicorn's forwarded-allow-ips); unset: none",
    )
    docs_enabled: bool | None = Field(
        default=None,
        description="Serve /docs and /openapi.json without a key (default: on in development, "
        "off in production)",
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, gt=0, description="Largest accepted request body (413 above)"
    )
    openai_max_inputs: int = Field(
        default=2048, gt=0, description="Most inputs in one /v1/embeddings request (400 above)"
    )

    cache_warmup_requests: int = Field(
        default=100,
        ge=0,
        description="Before traffic moves to a version, replay at most this many of the most "
        "frequent recent requests of the version it replaces (0: no warm-up)",
    )
    cache_warmup_s: float = Field(
        default=10.0, gt=0, description="Time a cache warm-up may take before traffic moves"
    )
    cache_warmup_concurrency: int = Field(
        default=2, gt=0, description="Warm-up requests at once (low priority: few)"
    )
    cache_enabled: bool = Field(default=True, description="Cache results unless a model opts out")
    cache_ttl_s: float = Field(default=300.0, gt=0, description="Lifetime of a Redis entry")
    cache_max_entry_bytes: int = Field(
        default=1024 * 1024, gt=0, description="Larger results are not cached"
    )
    cache_stale_if_error_s: float = Field(
        default=300.0,
        ge=0,
        description="How long past its TTL a cached answer may still be served, marked stale, "
        "when Triton cannot answer (0: never; per model: cache_stale_if_error_s)",
    )
    cache_models: dict[str, ModelCacheSettings] = Field(
        default_factory=dict,
        description='Per-model policy, JSON: {"model": {"enabled": false, "ttl_s": 60}}',
    )
    cache_local_max_bytes: int = Field(
        default=64 * 1024 * 1024, ge=0, description="Size of the in-process tier (0: off)"
    )
    cache_local_ttl_s: float = Field(
        default=5.0, gt=0, description="Lifetime of an in-process entry"
    )
    cache_lock_ttl_s: float = Field(
        default=10.0, gt=0, description="Lifetime of a cross-process single-flight lock"
    )
    cache_lock_wait_s: float = Field(
        default=5.0,
        ge=0,
        description="How long to wait for the entry of another process that holds the lock",
    )
    cache_secret: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_CACHE_SECRET),
        description="HMAC secret signing cache entries (the same in every gateway process)",
    )
    cache_per_tenant: bool = Field(
        default=True,
        description="A cache namespace per key tenant (false: one shared by every tenant); "
        "a model may share across tenants (`cache_shared_across_tenants`)",
    )
    catalog_refresh_s: float = Field(
        default=1.0, gt=0, description="How often the view of Triton's models is refreshed"
    )

    quality_gate_min_agreement: float = Field(
        default=0.9, ge=0, le=1, description="Promotion gate for classifiers: share of equal labels"
    )
    quality_gate_min_cosine: float = Field(
        default=0.98, ge=-1, le=1, description="Promotion gate for float outputs: worst cosine"
    )
    quality_gate_min_shadow_requests: int = Field(
        default=0,
        ge=0,
        description="Promotion gate: mirrored requests a candidate must have answered against "
        "the version it replaces, judged with the same thresholds (0: shadow evidence not "
        "required; config parameter quality_gate_min_shadow_requests per model)",
    )
    shadow_max_in_flight: int = Field(
        default=4,
        ge=1,
        description="Requests one worker mirrors to shadow versions at once; more are dropped",
    )
    max_upload_bytes: int = Field(
        default=2 * 1024**3, gt=0, description="Largest model file accepted by publish"
    )

    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="An MLflow tracking/registry URI (http://..., sqlite:///mlflow.db): model "
        "versions can be published from its registry, and aliases drive traffic (the "
        "`mlflow` extra)",
    )
    mlflow_champion_alias: str = Field(
        default="champion", description="The registry alias that gets the default traffic"
    )
    mlflow_challenger_alias: str = Field(
        default="challenger", description="The registry alias that gets the canary share"
    )
    mlflow_canary_percent: int = Field(
        default=10, ge=1, le=50, description="The challenger's share of the traffic, in %"
    )
    mlflow_sync: dict[str, str] = Field(
        default_factory=dict,
        description="Models whose traffic follows registry aliases by themselves (JSON: "
        '{"<Triton model>": "<registered model>"}), in one replica at a time',
    )
    mlflow_sync_s: float = Field(
        default=30.0, gt=0, description="How often GATEWAY_MLFLOW_SYNC models are synced"
    )
    model_repository: Path = Field(
        default=Path("model_repository"),
        description="Triton model repository served by the embedded Triton",
    )
    state_dir: Path = Field(
        default=Path(".gateway"), description="Logs and data of embedded services"
    )
    trace_spans: Literal["request", "detailed"] = Field(
        default="request",
        description="Spans per traced request: `request` (one SERVER span, plus a CLIENT span "
        "per Triton call; stages as attributes) or `detailed` (a span per stage: auth, cache "
        "lookups and stores, single-flight waits)",
    )
    trace_slow_s: float = Field(
        default=0.5,
        gt=0,
        description="With OTEL_TRACES_SAMPLER=parentbased_traceidratio, a request not drawn "
        "is still traced (one span) when it fails with a 5xx or takes at least this long",
    )
    exemplar_interval_s: float = Field(
        default=1.0,
        ge=0,
        description="An inference metric series takes a traced request's trace id as its "
        "exemplar at most this often (it shows only its latest); 0: every traced request",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    access_log: bool = Field(default=True, description="One JSON access line per request")
    access_log_flush_s: float = Field(
        default=0.1,
        ge=0,
        description="Access lines wait at most this long (or until 4 KiB) to be written "
        "together; 0 writes each line at once",
    )

    @field_validator("triton_url", "triton_urls")
    @classmethod
    def _triton_urls_are_plain_http(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        several = info.field_name == "triton_urls"
        for source in value.split(",") if several else [value]:
            url, _, fragment = source.strip().partition("#")
            if several and url.startswith("dns+"):
                url = url.removeprefix("dns+")
            if fragment and not (several and re.fullmatch(r"metrics=\d{1,5}", fragment)):
                raise ValueError(f"{source.strip()!r}: after '#' only metrics=PORT")
            if not _TRITON_URL.match(url):
                raise ValueError(
                    f"{url!r} is not http://host[:port][/path]"
                    + (" (or dns+http://name:port)" if several else "")
                    + ": the gateway speaks plain HTTP/1.1 to Triton"
                )
        return value

    @field_validator("redis_url", "auth_redis_url")
    @classmethod
    def _redis_url_is_usable(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            variable = f"GATEWAY_{(info.field_name or '').upper()}"
            try:
                check_redis_url(value)
            except ValueError as exc:
                raise ValueError(
                    f"{variable} must be redis://[user:password@]host[:port][/db], "
                    "rediss://..., unix:///path, redis+cluster://host:port[,host:port...] or "
                    f"redis+sentinel://host:port[,host:port...]/service[/db] ({exc})"
                ) from None
        return value

    @field_validator("admin_key")
    @classmethod
    def _admin_key_is_well_formed(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                ApiKey.parse(value.get_secret_value())
            except MalformedKey:
                raise ValueError(
                    "is not a well-formed key; make one with `gateway keys generate`"
                ) from None
        return value

    @model_validator(mode="after")
    def _tls_files_come_in_pairs(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("GATEWAY_TLS_CERT_FILE and GATEWAY_TLS_KEY_FILE go together")
        for name in ("tls_cert_file", "tls_key_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"GATEWAY_{name.upper()}: no such file: {path}")
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment != "production":
            return self
        missing = [
            f"GATEWAY_{name.upper()}"
            for name in ("triton_url", "redis_url")
            if not (self.triton_sources if name == "triton_url" else getattr(self, name))
        ]
        if missing:
            raise ValueError("production needs external services; set " + ", ".join(missing))
        for name, default in (
            ("key_pepper", DEVELOPMENT_PEPPER),
            ("cache_secret", DEVELOPMENT_CACHE_SECRET),
        ):
            value = getattr(self, name).get_secret_value()
            if value == default or len(value) < 32:
                raise ValueError(
                    f"production needs GATEWAY_{name.upper()}: a random secret of at least "
                    "32 characters"
                )
        return self

    @property
    def serves_docs(self) -> bool:
        if self.docs_enabled is not None:
            return self.docs_enabled
        return self.environment == "development"

    @property
    def triton_sources(self) -> list[str]:
        """GATEWAY_TRITON_URLS, else GATEWAY_TRITON_URL (empty: neither is set)."""
        if self.triton_urls:
            return [source.strip() for source in self.triton_urls.split(",") if source.strip()]
        return [self.triton_url] if self.triton_url else []

    @property
    def key_store_url(self) -> str | None:
        return self.auth_redis_url or self.redis_url

    def as_environment(self) -> dict[str, str]:
        """These settings as the GATEWAY_* variables that load them again, secrets included
        (for worker processes of our own): complex values as JSON, as they are read."""
        values = self.model_dump(mode="json", exclude_none=True)
        environment = {}
        for name, value in values.items():
            raw = getattr(self, name)
            if isinstance(raw, SecretStr):
                text = raw.get_secret_value()
            elif isinstance(value, dict | list | bool):
                text = json.dumps(value)
            else:
                text = str(value)
            environment[f"GATEWAY_{name.upper()}"] = text
        return environment

    def with_services(
        self, *, triton_url: str, redis_url: str, triton_urls: str | None = None
    ) -> Settings:
        """A copy pointing at the given services (what `gateway up` does after embedding)."""
        update = {"triton_url": triton_url, "redis_url": redis_url}
        if triton_urls:
            update["triton_urls"] = triton_urls
        return self.model_copy(update=update)


class InvalidSettings(Exception):
    """GATEWAY_* values that do not load: one line per problem, naming the variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def load_settings(**values: Any) -> Settings:
    """Settings from the environment (and `values`), and from one file per secret in
    GATEWAY_SECRETS_DIR when set (e.g. /run/secrets: a file `gateway_key_pepper` holds
    GATEWAY_KEY_PEPPER); InvalidSettings names what is wrong."""
    secrets_dir = os.environ.get("GATEWAY_SECRETS_DIR")
    if secrets_dir and not Path(secrets_dir).is_dir():
        raise InvalidSettings([f"GATEWAY_SECRETS_DIR: no such directory: {secrets_dir}"])
    try:
        return Settings(_secrets_dir=secrets_dir or None, **values)
    except SettingsError as exc:  # a complex value (JSON) that does not parse
        field = re.search(r'field "([^"]+)"', str(exc))
        name = f"GATEWAY_{field.group(1).upper()}" if field else "a GATEWAY_* variable"
        raise InvalidSettings([f"{name} is not valid JSON ({exc.__cause__})"]) from None
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            location = [str(part) for part in error["loc"]]
            name = f"GATEWAY_{location[0].upper()}" if location else "settings"
            where = f" ({'.'.join(location[1:])})" if len(location) > 1 else ""
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{name}{where}: {message}")
        raise InvalidSettings(problems) from None
