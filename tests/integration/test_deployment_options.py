"""Options for running behind a proxy and in production: client addresses, API docs."""

from __future__ import annotations

import io
import ssl
from pathlib import Path

import httpx
import orjson
import pytest
import trustme

from devstack import EmbeddedRedis, EmbeddedTriton
from tests.integration.conftest import gateway_settings
from tests.support.keys import AUTH
from tests.support.serve import gateway_serve
from tests.support.server import running_gateway

FORWARDED = {"X-Forwarded-For": "203.0.113.7, 10.0.0.2"}


def logged_client(triton: EmbeddedTriton, redis: EmbeddedRedis, **options: object) -> str:
    """The `client` of the access line of one request sent with X-Forwarded-For."""
    lines = io.BytesIO()
    with running_gateway(gateway_settings(triton, redis, **options), access_stream=lines) as url:
        assert httpx.get(f"{url}/v2/health/live", headers=FORWARDED).status_code == 200
    record = orjson.loads(lines.getvalue().splitlines()[-1])
    client: str = record["client"]
    return client


def test_forwarded_addresses_are_believed_only_from_trusted_proxies(
    triton: EmbeddedTriton, redis_server: EmbeddedRedis
) -> None:
    assert logged_client(triton, redis_server) == "127.0.0.1"
    assert logged_client(triton, redis_server, forwarded_allow_ips="192.0.2.1") == "127.0.0.1"
    # The loopback proxy is trusted; 10.0.0.2 is not, so the address before it is the client.
    trusted = logged_client(triton, redis_server, forwarded_allow_ips="127.0.0.1,10.0.0.0/8")
    assert trusted == "203.0.113.7"


def test_api_docs_are_off_in_production_unless_asked_for(
    triton: EmbeddedTriton, tmp_path: Path
) -> None:
    secrets = {"key_pepper": "p" * 40, "cache_secret": "c" * 40}
    own_redis = EmbeddedRedis(tmp_path, persistent=False)  # keys hashed with this pepper
    own_redis.start()
    try:
        for options, served in (
            ({"environment": "development"}, True),
            ({"environment": "production"}, False),
            ({"environment": "production", "docs_enabled": True}, True),
        ):
            settings = gateway_settings(triton, own_redis, **secrets, **options)
            with running_gateway(settings) as url:
                for path in ("/docs", "/openapi.json"):
                    status = httpx.get(f"{url}{path}").status_code
                    assert status == (200 if served else 404), (options, path, status)
    finally:
        own_redis.stop()


def test_gateway_serve_speaks_tls_with_the_configured_certificate(
    triton: EmbeddedTriton, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = (tmp_path / n for n in ("cert.pem", "key.pem", "ca.pem"))
    certificate.private_key_pem.write_to_path(str(key_file))
    certificate.cert_chain_pems[0].write_to_path(str(cert_file))
    authority.cert_pem.write_to_path(str(ca_file))
    with gateway_serve(
        triton,
        redis_server,
        tmp_path / "state",
        command=["serve", "--tls-cert-file", str(cert_file), "--tls-key-file", str(key_file)],
        tls_ca=ca_file,
    ) as served:
        assert served.url.startswith("https://")
        trusted = ssl.create_default_context(cafile=str(ca_file))
        with httpx.Client(base_url=served.url, verify=trusted, headers=AUTH) as client:
            response = client.post(
                "/v2/models/tabular_classifier/infer",
                json={"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP32",
                                  "data": [1.0] * 30}]},
            )  # fmt: skip
            assert response.status_code == 200, response.text
        with pytest.raises(httpx.ConnectError):  # a certificate nobody vouches for
            httpx.get(f"{served.url}/v2/health/live")
        with pytest.raises(httpx.TransportError):  # no plain HTTP on the TLS port
            httpx.get(f"http://127.0.0.1:{served.port}/v2/health/live")
