"""Stock `tritonclient` against the gateway gets exactly what ONNX Runtime computes."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient

from gateway import __version__
from tests.support.data import INPUT_NAMES, OUTPUT_NAMES, onnxruntime_outputs, samples
from tests.support.keys import auth_headers

CASES = [
    (model, version, binary)
    for model in ("tabular_classifier", "digits_classifier")
    for version in ("1", "2")
    for binary in (False, True)
]


@pytest.fixture(scope="module")
def client(gateway_url: str) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(gateway_url.removeprefix("http://"))
    yield client
    client.close()


@pytest.mark.parametrize(("model", "version", "binary"), CASES)
def test_outputs_equal_onnxruntime_in_process(
    client: httpclient.InferenceServerClient, model: str, version: str, binary: bool
) -> None:
    x = samples(model, rows=7)
    tensor = httpclient.InferInput(INPUT_NAMES[model], list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput(name, binary_data=binary) for name in OUTPUT_NAMES]

    result = client.infer(
        model, [tensor], model_version=version, outputs=outputs, headers=auth_headers()
    )

    expected = onnxruntime_outputs(model, version, x)
    assert result.get_response()["model_version"] == version
    for name in OUTPUT_NAMES:
        got = result.as_numpy(name)
        assert got.dtype == expected[name].dtype
        np.testing.assert_array_equal(got, expected[name].reshape(got.shape))


def test_unversioned_request_is_served_by_the_latest_version(
    client: httpclient.InferenceServerClient,
) -> None:
    x = samples("tabular_classifier", rows=2)
    tensor = httpclient.InferInput("features", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    result = client.infer("tabular_classifier", [tensor], headers=auth_headers())
    assert result.get_response()["model_version"] == "2"
    np.testing.assert_array_equal(
        result.as_numpy("probabilities"),
        onnxruntime_outputs("tabular_classifier", "2", x)["probabilities"],
    )


def test_classification_extension_passes_through(
    client: httpclient.InferenceServerClient,
) -> None:
    x = samples("digits_classifier", rows=2)
    tensor = httpclient.InferInput("image", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    top = httpclient.InferRequestedOutput("probabilities", class_count=3)
    result = client.infer(
        "digits_classifier", [tensor], model_version="2", outputs=[top], headers=auth_headers()
    )
    classes = result.as_numpy("probabilities")
    assert classes.shape == (2, 3)
    expected = onnxruntime_outputs("digits_classifier", "2", x)["label"].reshape(-1)
    for row, label in zip(classes, expected, strict=True):
        score, index, name = row[0].decode().split(":")
        assert int(index) == label and name == str(label) and 0.0 < float(score) <= 1.0


def test_request_id_is_echoed(client: httpclient.InferenceServerClient) -> None:
    x = samples("tabular_classifier", rows=1)
    tensor = httpclient.InferInput("features", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    result = client.infer(
        "tabular_classifier", [tensor], request_id="abc-123", headers=auth_headers()
    )
    assert result.get_response()["id"] == "abc-123"


def test_metadata_config_and_health_through_tritonclient(
    client: httpclient.InferenceServerClient, gateway_url: str
) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("digits_classifier", "1", headers=auth_headers())
    assert not client.is_model_ready("digits_classifier", "9", headers=auth_headers())
    metadata = client.get_model_metadata("digits_classifier", headers=auth_headers())
    assert metadata["versions"] == ["1", "2"]
    assert metadata["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 8, 8]}]
    config = client.get_model_config("tabular_classifier", "1", headers=auth_headers())
    assert config["max_batch_size"] == 64 and config["backend"] == "onnxruntime"
    server = client.get_server_metadata(headers=auth_headers())
    assert server["name"] == "triton"  # as stock clients check; the gateway in X-Gateway
    assert server["version"].startswith("2.")
    answered = httpx.get(f"{gateway_url}/v2", headers=auth_headers())
    assert answered.headers["x-gateway"] == f"gateway/{__version__}"
    assert "binary_tensor_data" in server["extensions"]
    assert "model_repository" not in server["extensions"]


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
@pytest.mark.parametrize("binary", [False, True])
def test_compressed_requests_and_responses(
    client: httpclient.InferenceServerClient, algorithm: str, binary: bool
) -> None:
    x = samples("tabular_classifier", rows=5)
    tensor = httpclient.InferInput("features", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in OUTPUT_NAMES]
    result = client.infer(
        "tabular_classifier",
        [tensor],
        model_version="1",
        outputs=outputs,
        headers={**auth_headers(), "Cache-Control": "no-store"},
        request_compression_algorithm=algorithm,
        response_compression_algorithm=algorithm,
    )
    expected = onnxruntime_outputs("tabular_classifier", "1", x)
    for name in OUTPUT_NAMES:
        got = result.as_numpy(name)
        np.testing.assert_array_equal(got, expected[name].reshape(got.shape))


def test_a_body_that_inflates_past_the_limit_is_413(gateway_url: str) -> None:
    bomb = gzip.compress(b" " * 2_000_000)  # 2 MB of spaces: a few KB compressed
    response = httpx.post(
        f"{gateway_url}/v2/models/tabular_classifier/infer",
        content=bomb,
        headers={**auth_headers(), "Content-Encoding": "gzip"},
    )
    assert response.status_code == 413 and "inflated" in response.json()["error"]
    refused = httpx.post(
        f"{gateway_url}/v2/models/tabular_classifier/infer",
        content=b"{}",
        headers={**auth_headers(), "Content-Encoding": "br"},
    )
    assert refused.status_code == 415 and "'br'" in refused.json()["error"]
