"""The gateway's settings, read from `GATEWAY_*` environment variables (or a `.env` file).

`GATEWAY_TRITON_URL` / `GATEWAY_TRITON_GRPC_URL` and `GATEWAY_REDIS_URL` point at external
services; left unset, `gateway up` starts embedded ones and fills them in. `gateway serve`
(production) needs them set. With `GATEWAY_ENVIRONMENT=production` the settings refuse to
load while an unsafe default is left in place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "production"]


class Settings(BaseSettings):
    """Everything the gateway can be told from outside; immutable once loaded."""

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", env_file=".env", extra="ignore", frozen=True
    )

    environment: Environment = "development"

    triton_url: str | None = Field(
        default=None, description="Triton's HTTP endpoint, e.g. http://triton:8000"
    )
    triton_grpc_url: str | None = Field(
        default=None, description="Triton's gRPC endpoint (host:port), used for inference"
    )
    triton_timeout_s: float = Field(
        default=30.0, gt=0, description="Deadline of one inference call to Triton"
    )
    triton_control_timeout_s: float = Field(
        default=5.0, gt=0, description="Deadline of metadata, config and health calls to Triton"
    )
    retry_after_s: int = Field(
        default=1, ge=0, description="Retry-After sent with 503 when Triton is unreachable"
    )

    redis_url: str | None = Field(default=None, description="redis://host:port/db")

    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, gt=0, description="Largest accepted request body (413 above)"
    )

    model_repository: Path = Field(
        default=Path("model_repository"),
        description="Triton model repository served by the embedded Triton",
    )
    state_dir: Path = Field(
        default=Path(".gateway"), description="Logs and data of embedded services"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment != "production":
            return self
        missing = [
            f"GATEWAY_{name.upper()}"
            for name in ("triton_url", "triton_grpc_url", "redis_url")
            if getattr(self, name) is None
        ]
        if missing:
            raise ValueError("production needs external services; set " + ", ".join(missing))
        return self

    def with_services(self, *, triton_url: str, triton_grpc_url: str, redis_url: str) -> Settings:
        """A copy pointing at the given services (what `gateway up` does after embedding)."""
        return self.model_copy(
            update={
                "triton_url": triton_url,
                "triton_grpc_url": triton_grpc_url,
                "redis_url": redis_url,
            }
        )
