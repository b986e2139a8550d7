"""The CPU backend's batching and error handling, with real ONNX Runtime.

Only Triton's stub API (`triton_python_backend_utils`) is faked: it is the boundary the
backend talks to inside the stub process.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

BACKEND = Path(__file__).resolve().parents[3] / "devstack/backends/onnxruntime/model.py"
WEIGHTS = np.arange(12, dtype=np.float32).reshape(4, 3) / 10


class FakeTensor:
    def __init__(self, name: str, array: Any) -> None:
        self.name, self.array = name, array

    def as_numpy(self) -> Any:
        return self.array


class FakeError:
    INVALID_ARG, INTERNAL = 3, 13

    def __init__(self, message: str, code: int = 13) -> None:
        self.message, self.code = message, code


class FakeResponse:
    def __init__(
        self, output_tensors: list[FakeTensor] | None = None, error: FakeError | None = None
    ) -> None:
        self.outputs = {t.name: t.array for t in output_tensors or []}
        self.error = error


class FakeRequest:
    def __init__(self, requested: list[str] | None = None, **inputs: Any) -> None:
        self.inputs, self.requested = inputs, requested or []

    def requested_output_names(self) -> list[str]:
        return self.requested


@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    fake = types.ModuleType("triton_python_backend_utils")
    fake.Tensor = FakeTensor  # type: ignore[attr-defined]
    fake.TritonError = FakeError  # type: ignore[attr-defined]
    fake.InferenceResponse = FakeResponse  # type: ignore[attr-defined]
    fake.get_input_tensor_by_name = lambda request, name: (  # type: ignore[attr-defined]
        FakeTensor(name, request.inputs[name]) if name in request.inputs else None
    )
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake)
    spec = importlib.util.spec_from_file_location("cpu_onnxruntime_backend", BACKEND)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def make_model(repository: Path, backend: types.ModuleType, threads: int = 1) -> Any:
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["y"]),
            helper.make_node("Identity", ["x"], ["x_copy"]),
        ],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, None])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3]),
            helper.make_tensor_value_info("x_copy", TensorProto.FLOAT, [None, None]),
        ],
        [numpy_helper.from_array(WEIGHTS, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (repository / "1").mkdir(parents=True)
    onnx.save(model, repository / "1" / "model.onnx")
    config = {
        "max_batch_size": 8,
        "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [-1]}],
        "output": [
            {"name": "y", "data_type": "TYPE_FP32", "dims": [3]},
            {"name": "x_copy", "data_type": "TYPE_FP32", "dims": [-1]},
        ],
        "parameters": {"intra_op_thread_count": {"string_value": str(threads)}},
    }
    instance = backend.TritonPythonModel()
    instance.initialize(
        {
            "model_config": json.dumps(config),
            "model_name": "linear",
            "model_repository": str(repository),
            "model_version": "1",
        }
    )
    return instance


class CountingSession:
    def __init__(self, session: Any) -> None:
        self.session, self.runs = session, 0

    def run(self, names: list[str], feeds: dict[str, Any]) -> Any:
        self.runs += 1
        return self.session.run(names, feeds)


def test_requests_of_one_shape_share_one_run_and_are_split_back(
    tmp_path: Path, backend: types.ModuleType
) -> None:
    model = make_model(tmp_path, backend)
    model._session = counting = CountingSession(model._session)
    rng = np.random.default_rng(1)
    batches = [rng.standard_normal((rows, 4)).astype(np.float32) for rows in (1, 3, 2)]

    responses = model.execute([FakeRequest(x=x) for x in batches])

    assert counting.runs == 1
    for x, response in zip(batches, responses, strict=True):
        assert response.error is None
        np.testing.assert_allclose(response.outputs["y"], x @ WEIGHTS, rtol=1e-6)
        np.testing.assert_array_equal(response.outputs["x_copy"], x)


def test_requests_of_different_shapes_run_in_separate_groups(
    tmp_path: Path, backend: types.ModuleType
) -> None:
    model = make_model(tmp_path, backend)
    model._session = counting = CountingSession(model._session)
    four = np.ones((2, 4), np.float32)
    five = np.ones((1, 5), np.float32)  # fails MatMul: its own group, its own error

    responses = model.execute([FakeRequest(x=four), FakeRequest(x=five), FakeRequest(x=four)])

    assert counting.runs == 2
    assert responses[0].error is None and responses[2].error is None
    assert responses[1].error is not None and "linear" in responses[1].error.message


def test_only_requested_outputs_are_returned(tmp_path: Path, backend: types.ModuleType) -> None:
    model = make_model(tmp_path, backend)
    (response,) = model.execute([FakeRequest(requested=["y"], x=np.ones((1, 4), np.float32))])
    assert set(response.outputs) == {"y"}


def test_thread_settings_come_from_config_parameters(
    tmp_path: Path, backend: types.ModuleType
) -> None:
    model = make_model(tmp_path, backend, threads=2)
    assert model._session.get_session_options().intra_op_num_threads == 2


def test_config_names_missing_from_the_graph_fail_at_load(
    tmp_path: Path, backend: types.ModuleType
) -> None:
    make_model(tmp_path, backend)
    config = {
        "input": [{"name": "not_x", "data_type": "TYPE_FP32", "dims": [4]}],
        "output": [{"name": "y", "data_type": "TYPE_FP32", "dims": [3]}],
    }
    with pytest.raises(ValueError, match="not_x"):
        backend.TritonPythonModel().initialize(
            {
                "model_config": json.dumps(config),
                "model_name": "m",
                "model_repository": str(tmp_path),
                "model_version": "1",
            }
        )
