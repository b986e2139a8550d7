"""Text in, embedding out, through the gateway with stock tritonclient."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient
from numpy.typing import NDArray

from model_build.embedding import cosines, read_texts, reference_embeddings
from model_build.sentences import SENTENCES
from tests.support.keys import auth_headers


@pytest.fixture(scope="module")
def client(gateway_url: str) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(
        gateway_url.removeprefix("http://"), network_timeout=120
    )
    yield client
    client.close()


@pytest.fixture(scope="module")
def reference() -> NDArray[np.float32]:
    return reference_embeddings()  # sentence-transformers, in this process


def embed(
    client: httpclient.InferenceServerClient,
    model: str,
    texts: tuple[str, ...],
    binary: bool = True,
) -> tuple[NDArray[np.float32], str]:
    tensor = httpclient.InferInput("text", [len(texts), 1], "BYTES")
    tensor.set_data_from_numpy(
        np.array([[t.encode()] for t in texts], dtype=np.object_), binary_data=binary
    )
    result = client.infer(model, [tensor], headers=auth_headers())
    embedding: NDArray[np.float32] = result.as_numpy("embedding")
    return embedding, result.get_response()["model_version"]


def test_text_in_embedding_out_equal_to_sentence_transformers(
    client: httpclient.InferenceServerClient, reference: NDArray[np.float32]
) -> None:
    one_by_one = np.concatenate(
        [embed(client, "text_embedding", (text,), binary=False)[0] for text in SENTENCES[:8]]
    )
    batched, _ = embed(client, "text_embedding", SENTENCES)
    assert batched.shape == (len(SENTENCES), 384) and batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    assert cosines(batched, reference).min() >= 0.9999
    assert cosines(one_by_one, reference[:8]).min() >= 0.9999


def test_int8_version_within_its_measured_bound_of_fp32(
    client: httpclient.InferenceServerClient,
) -> None:
    fp32, _ = embed(client, "text_embedding", SENTENCES)
    int8, _ = embed(client, "text_embedding_int8", SENTENCES)
    similarity = cosines(int8, fp32)
    # model_repository/README.md: mean 0.9979, min 0.9952 on this set, measured in-process
    assert similarity.mean() >= 0.995 and similarity.min() >= 0.99


def test_repeated_texts_are_answered_from_the_cache(gateway_url: str) -> None:
    body = {
        "inputs": [
            {
                "name": "text",
                "shape": [1, 1],
                "datatype": "BYTES",
                "data": ["a cached search query"],
            }
        ]
    }
    first = httpx.post(
        f"{gateway_url}/v2/models/text_embedding/infer",
        json=body,
        headers=auth_headers(),
        timeout=60,
    )
    second = httpx.post(
        f"{gateway_url}/v2/models/text_embedding/infer",
        json=body,
        headers=auth_headers(),
        timeout=60,
    )
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert first.json()["outputs"] == second.json()["outputs"]


def test_invalid_utf8_text_is_a_clear_error(gateway_url: str) -> None:
    raw = b"\xff\xfe"
    header = (
        b'{"inputs":[{"name":"text","shape":[1,1],"datatype":"BYTES",'
        b'"parameters":{"binary_data_size":6}}]}'
    )
    response = httpx.post(
        f"{gateway_url}/v2/models/text_embedding/infer",
        content=header + len(raw).to_bytes(4, "little") + raw,
        headers={"Inference-Header-Content-Length": str(len(header)), **auth_headers()},
        timeout=60,
    )
    assert response.status_code == 400
    assert "UTF-8" in response.json()["error"]


def test_the_quality_gate_judges_int8_on_the_separate_probe_set(gateway_url: str) -> None:
    with httpx.Client(base_url=gateway_url, headers=auth_headers(), timeout=300) as admin:
        split = admin.put("/admin/models/text_encoder/traffic", json={"weights": {"1": 100}})
        assert split.status_code == 200, split.text
        promoted = admin.post("/admin/models/text_encoder/promote", json={"version": "2"})
        try:
            assert promoted.status_code == 200, promoted.text
            gate = promoted.json()["quality_gate"]
            assert gate["measure"] == "min_cosine" and gate["threshold"] == 0.98
            assert gate["rows"] == len(read_texts("probes.txt"))  # several requests of <= 64
            assert gate["value"] >= 0.98
            assert gate["value"] <= gate["p1"] <= gate["mean"] <= 1.0
        finally:
            for _ in range(2 if promoted.status_code == 200 else 1):  # to no split at all
                assert admin.post("/admin/models/text_encoder/rollback").status_code == 200
