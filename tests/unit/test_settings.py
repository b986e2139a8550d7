"""Settings: environment variables, and production refusing unsafe defaults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from auth import ApiKey
from gateway.settings import InvalidSettings, Settings, load_settings

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
    with pytest.raises(ValidationError, match="is not http://host"):
        Settings(triton_url=url)
    with pytest.raises(ValidationError, match="is not http://host"):
        Settings(triton_urls=f"http://other:8000,{url}")


def test_several_tritons_and_dns_names_are_accepted() -> None:
    settings = Settings(triton_urls="http://a:8000, dns+http://tritons:8000#metrics=8002")
    assert settings.triton_sources == ["http://a:8000", "dns+http://tritons:8000#metrics=8002"]
    assert Settings(triton_url="http://a:8000").triton_sources == ["http://a:8000"]
    with pytest.raises(ValidationError, match="only metrics=PORT"):
        Settings(triton_urls="http://a:8000#grpc=8001")


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


# A value unlike the default for every setting whose value is not a plain scalar: each must
# survive the hand-over to worker processes (Settings.as_environment, then loading again).
COMPLEX_VALUES: dict[str, Any] = {
    "cache_models": {"tabular_classifier": {"enabled": False, "ttl_s": 60}, "m": {}},
    "mlflow_sync": {"tabular_classifier": "breast-cancer"},
}


def complex_fields() -> set[str]:
    return {
        name
        for name, field in Settings.model_fields.items()
        if getattr(field.annotation, "__origin__", None) in (dict, list)
        or str(field.annotation).startswith(("dict", "list"))
    }


def test_every_complex_setting_has_a_hand_over_case() -> None:
    assert complex_fields() == set(COMPLEX_VALUES)


def test_settings_survive_the_hand_over_to_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Settings(
        **SERVICES,
        **COMPLEX_VALUES,
        key_pepper="p" * 40,
        admin_key=str(ApiKey.generate()),
        access_log=False,
        forwarded_allow_ips="10.0.0.0/8,127.0.0.1",
        shutdown_grace_s=2.5,
    )
    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)
    for name, text in original.as_environment().items():
        monkeypatch.setenv(name, text)
    again = Settings()
    assert again == original
    assert again.key_pepper.get_secret_value() == "p" * 40


def test_redis_urls_are_checked_when_settings_load() -> None:
    for url in ("garbage", "http://redis:6379", "redis://redis:port"):
        with pytest.raises(ValidationError, match="GATEWAY_REDIS_URL must be redis://"):
            Settings(redis_url=url)
    with pytest.raises(ValidationError, match=r"GATEWAY_AUTH_REDIS_URL .* names no host"):
        Settings(auth_redis_url="redis://")
    assert Settings(redis_url="unix:///run/redis.sock").redis_url == "unix:///run/redis.sock"
    cluster = "redis+cluster://a:7000,b:7001"
    assert Settings(redis_url=cluster).redis_url == cluster
    sentinel = "redis+sentinel://:pw@s1:26379,s2:26379/primary/2"
    assert Settings(redis_url=sentinel).redis_url == sentinel
    for bad, reason in (
        ("redis+cluster://a", "is not host:port"),
        ("redis+cluster://a:7000/3", "only database 0"),
        ("redis+sentinel://s1:26379", "names the primary"),
    ):
        with pytest.raises(ValidationError, match=reason):
            Settings(redis_url=bad)


def test_load_settings_names_the_variable_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_CACHE_MODELS", "{bad")
    with pytest.raises(InvalidSettings) as bad_json:
        load_settings()
    assert bad_json.value.problems == [
        "GATEWAY_CACHE_MODELS is not valid JSON (Expecting property name enclosed in double "
        "quotes: line 1 column 2 (char 1))"
    ]
    monkeypatch.setenv("GATEWAY_CACHE_MODELS", '{"m": {"ttl_s": -1}}')
    monkeypatch.setenv("GATEWAY_MAX_BODY_BYTES", "lots")
    with pytest.raises(InvalidSettings) as invalid:
        load_settings()
    assert invalid.value.problems == [
        "GATEWAY_MAX_BODY_BYTES: Input should be a valid integer, unable to parse string as an "
        "integer",
        "GATEWAY_CACHE_MODELS (m.ttl_s): Input should be greater than 0",
    ]


def test_docs_are_served_in_development_only_unless_configured() -> None:
    assert Settings().serves_docs
    production = {**SERVICES, "environment": "production", "key_pepper": PEPPER}
    production["cache_secret"] = PEPPER
    assert not Settings(**production).serves_docs
    assert Settings(**production, docs_enabled=True).serves_docs
    assert not Settings(docs_enabled=False).serves_docs


def test_secrets_are_read_from_files_in_the_secrets_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "gateway_key_pepper").write_text(PEPPER + "\n")  # as `openssl rand` writes
    (tmp_path / "gateway_cache_secret").write_text("c" * 40)
    monkeypatch.setenv("GATEWAY_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("GATEWAY_ENVIRONMENT", "production")
    monkeypatch.setenv("GATEWAY_TRITON_URL", SERVICES["triton_url"])
    monkeypatch.setenv("GATEWAY_REDIS_URL", SERVICES["redis_url"])
    settings = load_settings()
    assert settings.key_pepper.get_secret_value() == PEPPER
    assert settings.cache_secret.get_secret_value() == "c" * 40
    monkeypatch.setenv("GATEWAY_SECRETS_DIR", str(tmp_path / "absent"))
    with pytest.raises(InvalidSettings) as missing:
        load_settings()
    assert missing.value.problems == [
        f"GATEWAY_SECRETS_DIR: no such directory: {tmp_path / 'absent'}"
    ]


def test_tls_needs_a_certificate_and_its_key(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("-")
    with pytest.raises(ValidationError, match="go together"):
        Settings(tls_cert_file=cert)
    with pytest.raises(ValidationError, match="no such file"):
        Settings(tls_cert_file=cert, tls_key_file=key)
    key.write_text("-")
    assert Settings(tls_cert_file=cert, tls_key_file=key).tls_key_file == key


def test_idle_connections_outlive_a_load_balancers_idle_timeout() -> None:
    # ingress-nginx and cloud load balancers reuse an idle upstream connection for 60 s; a
    # gateway closing it sooner makes a POST sent on it fail with 502.
    assert Settings().keep_alive_s > 60
