"""The CPU `onnxruntime` backend under real Triton dynamic batching.

Models built here for the purpose:
- `picker` (batching): out[i] = data[i, index[i]] via GatherElements; an index out of range
  makes ONNX Runtime fail at run time, so one bad request can sit in a batch of good ones;
- `echo_text` (batching, variable length): BYTES in, the same BYTES out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import onnx
import pytest
from onnx import TensorProto, helper

from devstack import EmbeddedRedis, EmbeddedTriton
from tests.integration.conftest import gateway_settings
from tests.support.keys import AUTH
from tests.support.server import running_gateway

PICKER_CONFIG = """
name: "picker"
backend: "onnxruntime"
max_batch_size: 16
input [
  { name: "data" data_type: TYPE_FP32 dims: [ 4 ] },
  { name: "index" data_type: TYPE_INT64 dims: [ 1 ] }
]
output [ { name: "picked" data_type: TYPE_FP32 dims: [ 1 ] } ]
dynamic_batching { max_queue_delay_microseconds: 300000 }
instance_group [ { kind: KIND_CPU count: 1 } ]
parameters { key: "intra_op_thread_count" value: { string_value: "1" } }
"""

ECHO_CONFIG = """
name: "echo_text"
backend: "onnxruntime"
max_batch_size: 8
input [ { name: "text" data_type: TYPE_STRING dims: [ -1 ] } ]
output [ { name: "echo" data_type: TYPE_STRING dims: [ -1 ] } ]
dynamic_batching { max_queue_delay_microseconds: 300000 }
"""


def save_model(repository: Path, name: str, config: str, graph: onnx.GraphProto) -> None:
    (repository / name / "1").mkdir(parents=True)
    (repository / name / "config.pbtxt").write_text(config)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, repository / name / "1" / "model.onnx")


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("backend-models")
    picker = helper.make_graph(
        [helper.make_node("GatherElements", ["data", "index"], ["picked"], axis=1)],
        "picker",
        [
            helper.make_tensor_value_info("data", TensorProto.FLOAT, [None, 4]),
            helper.make_tensor_value_info("index", TensorProto.INT64, [None, 1]),
        ],
        [helper.make_tensor_value_info("picked", TensorProto.FLOAT, [None, 1])],
    )
    save_model(root, "picker", PICKER_CONFIG, picker)
    echo = helper.make_graph(
        [helper.make_node("Identity", ["text"], ["echo"])],
        "echo_text",
        [helper.make_tensor_value_info("text", TensorProto.STRING, [None, None])],
        [helper.make_tensor_value_info("echo", TensorProto.STRING, [None, None])],
    )
    save_model(root, "echo_text", ECHO_CONFIG, echo)
    return root


@pytest.fixture(scope="module")
def backend_triton(
    tmp_path_factory: pytest.TempPathFactory, repository: Path
) -> Iterator[EmbeddedTriton]:
    server = EmbeddedTriton(repository, tmp_path_factory.mktemp("backend-triton"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(backend_triton: EmbeddedTriton, redis_server: EmbeddedRedis) -> Iterator[str]:
    with running_gateway(gateway_settings(backend_triton, redis_server)) as url:
        yield url


def pick(url: str, data: npt.NDArray[Any], index: npt.NDArray[Any]) -> httpx.Response:
    body = {
        "inputs": [
            {
                "name": "data",
                "shape": list(data.shape),
                "datatype": "FP32",
                "data": data.ravel().tolist(),
            },
            {
                "name": "index",
                "shape": list(index.shape),
                "datatype": "INT64",
                "data": index.ravel().tolist(),
            },
        ]
    }
    return httpx.post(f"{url}/v2/models/picker/infer", json=body, headers=AUTH, timeout=30)


def metric(triton: EmbeddedTriton, name: str, model: str) -> float:
    text = httpx.get(triton.endpoints.metrics_url).text
    match = re.search(rf'^{name}{{model="{model}",version="1"}} (\S+)$', text, re.MULTILINE)
    assert match, f"{name} for {model} not in Triton's metrics"
    return float(match.group(1))


def test_concurrent_requests_are_batched_and_split_back(
    gateway: str, backend_triton: EmbeddedTriton
) -> None:
    rng = np.random.default_rng(0)
    cases = []
    for rows in (1, 2, 3, 1, 2, 3, 1, 2):
        data = rng.standard_normal((rows, 4)).astype(np.float32)
        index = rng.integers(0, 4, size=(rows, 1))
        cases.append((data, index))
    before_count = metric(backend_triton, "nv_inference_count", "picker")
    before_exec = metric(backend_triton, "nv_inference_exec_count", "picker")

    with ThreadPoolExecutor(len(cases)) as pool:
        responses = list(pool.map(lambda case: pick(gateway, *case), cases))

    for (data, index), response in zip(cases, responses, strict=True):
        assert response.status_code == 200, response.text
        (output,) = response.json()["outputs"]
        assert output["shape"] == [len(data), 1]
        np.testing.assert_array_equal(
            np.array(output["data"], dtype=np.float32), np.take_along_axis(data, index, 1).ravel()
        )
    items = metric(backend_triton, "nv_inference_count", "picker") - before_count
    executions = metric(backend_triton, "nv_inference_exec_count", "picker") - before_exec
    assert items == sum(len(data) for data, _ in cases)
    assert executions < len(cases), "Triton did not batch the concurrent requests"


def test_a_failing_request_fails_alone_in_its_batch(gateway: str) -> None:
    good = [(np.full((1, 4), float(i), np.float32), np.array([[i % 4]])) for i in range(5)]
    bad = (np.zeros((1, 4), np.float32), np.array([[9]]))  # index 9 of 4: ORT fails at run time
    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda case: pick(gateway, *case), [*good, bad]))
    for (data, _), response in zip(good, responses[:5], strict=True):
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == [float(data[0, 0])]
    failed = responses[5]
    assert failed.status_code == 500
    assert "picker" in failed.json()["error"]
    # the stub survived: the model still serves
    assert pick(gateway, *good[0]).status_code == 200


def test_bytes_round_trip_with_different_lengths_in_one_batch(gateway: str) -> None:
    texts = [["héllo"], ["a", "b c"], ["日本語", "", "x"], ["emoji 🙂"]]

    def echo(values: list[str]) -> httpx.Response:
        body = {
            "inputs": [
                {"name": "text", "shape": [1, len(values)], "datatype": "BYTES", "data": values}
            ]
        }
        return httpx.post(
            f"{gateway}/v2/models/echo_text/infer", json=body, headers=AUTH, timeout=30
        )

    with ThreadPoolExecutor(len(texts)) as pool:
        responses = list(pool.map(echo, texts))
    for values, response in zip(texts, responses, strict=True):
        assert response.status_code == 200, response.text
        (output,) = response.json()["outputs"]
        assert output["datatype"] == "BYTES" and output["data"] == values


def test_invalid_utf8_text_is_a_clear_per_request_error(gateway: str) -> None:
    raw = b"\xff\xfe"
    element = len(raw).to_bytes(4, "little") + raw
    header = (
        b'{"inputs":[{"name":"text","shape":[1,1],"datatype":"BYTES",'
        b'"parameters":{"binary_data_size":6}}]}'
    )
    response = httpx.post(
        f"{gateway}/v2/models/echo_text/infer",
        content=header + element,
        headers={"Inference-Header-Content-Length": str(len(header)), **AUTH},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert "'text'" in response.json()["error"] and "UTF-8" in response.json()["error"]
