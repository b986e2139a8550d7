"""Settings: environment variables, and production refusing unsafe defaults."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from auth import ApiKey
from gateway.settings import Settings

SERVICES: dict[str, Any] = {
    "triton_url": "http://triton:8000",
    "redis_url": "redis://redis:6379/0",
}
PEPPER = "x" * 40


def test_reads_gateway_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_TRITON_URL", "http://triton:8000")
    monkeypatch.setenv("GATEWAY_MAX_BODY_BYTES", "1024")
    settings = Settings()
    assert settings.triton_url == "http://triton:8000"
    assert settings.max_body_bytes == 1024


@pytest.mark.parametrize("url", ["https://triton:8000", "triton:8000", "http://"])
def test_triton_url_must_be_plain_http(url: str) -> None:
    with pytest.raises(ValidationError, match="GATEWAY_TRITON_URL must be http://"):
        Settings(triton_url=url)


def test_triton_url_may_carry_a_port_and_a_path_prefix() -> None:
    assert Settings(triton_url="http://proxy/triton").triton_url == "http://proxy/triton"
    assert Settings(triton_url="http://127.0.0.1:8000").triton_url == "http://127.0.0.1:8000"
    assert Settings(triton_url="http://[::1]:8000").triton_url == "http://[::1]:8000"


def test_production_needs_external_services() -> None:
    with pytest.raises(ValidationError, match=r"GATEWAY_TRITON_URL.*GATEWAY_REDIS_URL"):
        Settings(environment="production", key_pepper=PEPPER)


def test_production_refuses_the_development_pepper_and_short_ones() -> None:
    with pytest.raises(ValidationError, match="GATEWAY_KEY_PEPPER"):
        Settings(environment="production", **SERVICES)
    with pytest.raises(ValidationError, match="GATEWAY_KEY_PEPPER"):
        Settings(environment="production", key_pepper="short", **SERVICES)


def test_production_refuses_the_development_cache_secret() -> None:
    with pytest.raises(ValidationError, match="GATEWAY_CACHE_SECRET"):
        Settings(environment="production", key_pepper=PEPPER, **SERVICES)


def test_production_with_services_and_secrets_is_accepted() -> None:
    settings = Settings(
        environment="production", key_pepper=PEPPER, cache_secret="y" * 40, **SERVICES
    )
    assert settings.environment == "production"
    assert PEPPER not in repr(settings) and "y" * 40 not in repr(settings)


def test_per_model_cache_settings_parse_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_CACHE_MODELS", '{"digits_classifier": {"ttl_s": 60}}')
    assert Settings().cache_models["digits_classifier"].ttl_s == 60


def test_admin_key_must_be_well_formed() -> None:
    key = str(ApiKey.generate())
    assert Settings(admin_key=key).admin_key is not None
    with pytest.raises(ValidationError, match="gateway keys generate"):
        Settings(admin_key=key[:-1] + ("A" if key[-1] != "A" else "B"))


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValidationError, match="max_body_bytes"):
        Settings(max_body_bytes=0)
