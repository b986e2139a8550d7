"""Every authentication outcome through the real gateway, in the v2 error form."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from auth import ApiKey
from tests.support.admin import create_key, infer_tabular
from tests.support.keys import ADMIN_KEY, auth_headers


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def refused(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    message: str = body["error"]
    return message


def test_missing_key_is_401_with_a_hint(gateway_url: str) -> None:
    response = infer_tabular(gateway_url, {})
    assert "Authorization: Bearer" in refused(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    refused(httpx.get(f"{gateway_url}/v2/models/tabular_classifier"), 401)
    refused(httpx.get(f"{gateway_url}/v2"), 401)
    basic = refused(infer_tabular(gateway_url, {"Authorization": "Basic dXNlcjpwYXNz"}), 401)
    assert "must be 'Bearer <key>'" in basic
    bare = refused(infer_tabular(gateway_url, {"Authorization": str(ApiKey.generate())}), 401)
    assert "must be 'Bearer <key>'" in bare


def test_health_stays_open(gateway_url: str) -> None:
    assert httpx.get(f"{gateway_url}/v2/health/live").status_code == 200
    assert httpx.get(f"{gateway_url}/v2/health/ready").status_code == 200


@pytest.mark.parametrize("key", ["nonsense", "gwk_abc", "ghp_" + "a" * 36])
def test_malformed_keys_are_401(gateway_url: str, key: str) -> None:
    assert refused(infer_tabular(gateway_url, bearer(key)), 401) == "malformed API key"


def test_a_typo_in_a_real_key_is_malformed(gateway_url: str) -> None:
    _, key = create_key(gateway_url, models=["*"])
    typo = key[:10] + ("a" if key[10] != "a" else "b") + key[11:]
    assert refused(infer_tabular(gateway_url, bearer(typo)), 401) == "malformed API key"


def test_unknown_id_and_wrong_secret_get_the_same_answer(gateway_url: str) -> None:
    key_id, _ = create_key(gateway_url, models=["*"])
    unknown = infer_tabular(gateway_url, bearer(str(ApiKey.generate())))
    wrong_secret = infer_tabular(gateway_url, bearer(str(ApiKey(key_id, ApiKey.generate().secret))))
    assert refused(unknown, 401) == refused(wrong_secret, 401) == "invalid API key"
    assert key_id not in wrong_secret.text


def test_revoked_key_is_401_at_once(gateway_url: str) -> None:
    key_id, key = create_key(gateway_url, models=["*"])
    assert infer_tabular(gateway_url, bearer(key)).status_code == 200
    response = httpx.delete(f"{gateway_url}/admin/keys/{key_id}", headers=auth_headers())
    assert response.status_code == 200 and response.json()["revoked_at"] is not None
    assert refused(infer_tabular(gateway_url, bearer(key)), 401) == "API key revoked"


def test_expired_key_is_401(gateway_url: str) -> None:
    _, key = create_key(gateway_url, models=["*"], expires_in_seconds=1)
    assert infer_tabular(gateway_url, bearer(key)).status_code == 200
    time.sleep(1.1)
    assert refused(infer_tabular(gateway_url, bearer(key)), 401) == "API key expired"


def test_x_api_key_header_works_too(gateway_url: str) -> None:
    _, key = create_key(gateway_url, models=["tabular_*"])
    assert infer_tabular(gateway_url, {"X-API-Key": key}).status_code == 200


def test_models_outside_the_scope_are_403(gateway_url: str) -> None:
    _, key = create_key(gateway_url, models=["digits_*"])
    assert "tabular_classifier" in refused(infer_tabular(gateway_url, bearer(key)), 403)
    refused(httpx.get(f"{gateway_url}/v2/models/tabular_classifier", headers=bearer(key)), 403)
    refused(
        httpx.get(f"{gateway_url}/v2/models/tabular_classifier/config", headers=bearer(key)), 403
    )
    assert (
        httpx.get(f"{gateway_url}/v2/models/digits_classifier", headers=bearer(key)).status_code
        == 200
    )


def test_statistics_never_show_a_scoped_key_other_models(gateway_url: str) -> None:
    infer_tabular(gateway_url, bearer(ADMIN_KEY))  # some numbers to see
    for scope in ("st*", "tabular_*"):  # "stats" is not a model name to the gateway
        _, key = create_key(gateway_url, models=[scope])
        everything = httpx.get(f"{gateway_url}/v2/models/stats", headers=bearer(key))
        assert "admin" in refused(everything, 403)
        assert "digits" not in everything.text and "text_" not in everything.text
    own = httpx.get(f"{gateway_url}/v2/models/tabular_classifier/stats", headers=bearer(key))
    assert own.status_code == 200
    stats = own.json()["model_stats"]
    assert {s["name"] for s in stats} == {"tabular_classifier"}
    assert sum(s["inference_count"] for s in stats) >= 1
    one = httpx.get(
        f"{gateway_url}/v2/models/tabular_classifier/versions/1/stats", headers=bearer(key)
    ).json()["model_stats"]
    assert [(s["name"], s["version"]) for s in one] == [("tabular_classifier", "1")]
    refused(httpx.get(f"{gateway_url}/v2/models/digits_classifier/stats", headers=bearer(key)), 403)
    admin = httpx.get(f"{gateway_url}/v2/models/stats", headers=bearer(ADMIN_KEY))
    assert {"tabular_classifier", "digits_classifier"} <= {
        s["name"] for s in admin.json()["model_stats"]
    }


def test_admin_api_needs_the_admin_scope(gateway_url: str) -> None:
    _, key = create_key(gateway_url, models=["*"])
    assert "admin" in refused(httpx.get(f"{gateway_url}/admin/keys", headers=bearer(key)), 403)
    refused(httpx.post(f"{gateway_url}/admin/keys", json={"name": "x"}, headers=bearer(key)), 403)
    refused(httpx.get(f"{gateway_url}/admin/keys"), 401)


def test_rate_limit_is_429_with_its_headers(gateway_url: str) -> None:
    _, key = create_key(gateway_url, models=["*"], rate_limit_per_second=0.5, burst=2)
    first, second, third = (infer_tabular(gateway_url, bearer(key)) for _ in range(3))
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.headers["ratelimit-limit"] == "2"
    assert (first.headers["ratelimit-remaining"], second.headers["ratelimit-remaining"]) == (
        "1",
        "0",
    )
    assert "rate limit" in refused(third, 429)
    assert third.headers["ratelimit-limit"] == "2"
    assert third.headers["ratelimit-remaining"] == "0"
    assert 1 <= int(third.headers["retry-after"]) <= 2
    assert 1 <= int(third.headers["ratelimit-reset"]) <= 4


def test_admin_api_creates_lists_rotates_without_showing_secrets(gateway_url: str) -> None:
    key_id, key = create_key(
        gateway_url, name="team-a", models=["digits_*"], rate_limit_per_second=5, burst=10
    )
    listed = httpx.get(f"{gateway_url}/admin/keys", headers=auth_headers()).json()["keys"]
    mine = next(k for k in listed if k["id"] == key_id)
    assert mine["name"] == "team-a" and mine["models"] == ["digits_*"] and mine["burst"] == 10
    assert "hash" not in mine and "key" not in mine
    assert (
        key.split("_")[2] not in httpx.get(f"{gateway_url}/admin/keys", headers=auth_headers()).text
    )

    rotated = httpx.post(f"{gateway_url}/admin/keys/{key_id}/rotate", headers=auth_headers())
    assert rotated.status_code == 201
    new = rotated.json()
    assert new["id"] != key_id and new["models"] == ["digits_*"] and new["replaces"]["id"] == key_id
    assert new["replaces"]["expires_at"] is not None
    assert (
        httpx.get(
            f"{gateway_url}/v2/models/digits_classifier", headers=bearer(new["key"])
        ).status_code
        == 200
    )
    assert (
        httpx.get(f"{gateway_url}/v2/models/digits_classifier", headers=bearer(key)).status_code
        == 200
    )

    immediate = httpx.post(
        f"{gateway_url}/admin/keys/{new['id']}/rotate",
        json={"overlap_seconds": 0},
        headers=auth_headers(),
    ).json()
    assert (
        httpx.get(
            f"{gateway_url}/v2/models/digits_classifier", headers=bearer(new["key"])
        ).status_code
        == 401
    )
    assert (
        httpx.get(
            f"{gateway_url}/v2/models/digits_classifier", headers=bearer(immediate["key"])
        ).status_code
        == 200
    )


def test_admin_api_validates_its_input(gateway_url: str) -> None:
    response = httpx.post(f"{gateway_url}/admin/keys", json={"name": ""}, headers=auth_headers())
    assert "name" in refused(response, 400)
    response = httpx.post(
        f"{gateway_url}/admin/keys", json={"name": "x", "burst": 0}, headers=auth_headers()
    )
    assert "burst" in refused(response, 400)
    assert "nope" in refused(
        httpx.delete(f"{gateway_url}/admin/keys/nope", headers=auth_headers()), 404
    )


def test_refusals_are_counted_by_reason(gateway_url: str) -> None:
    def count(reason: str) -> float:
        text = httpx.get(f"{gateway_url}/metrics").text
        match = re.search(rf'^gateway_auth_failures_total{{reason="{reason}"}} (\S+)$', text, re.M)
        return float(match.group(1)) if match else 0.0

    before = {reason: count(reason) for reason in ("missing", "malformed", "invalid")}
    infer_tabular(gateway_url, {})
    infer_tabular(gateway_url, bearer("gwk_x"))
    infer_tabular(gateway_url, bearer(str(ApiKey.generate())))
    assert {reason: count(reason) - before[reason] for reason in before} == {
        "missing": 1,
        "malformed": 1,
        "invalid": 1,
    }
