"""`tabular_classifier` material shared by the lifecycle and release tests: request bodies,
a model that disagrees with it, and a client that streams requests the whole time."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import numpy as np
from onnx import TensorProto, helper, numpy_helper

from tests.support.data import samples

MODEL = "tabular_classifier"


def body(row: int = 0, seed: int | None = None) -> dict[str, object]:
    """One row: the held-out sample `row`, or random features from `seed`."""
    if seed is not None:
        x = np.random.default_rng(seed).random((1, 30), dtype=np.float32) * 20
    else:
        x = samples(MODEL, rows=1, offset=row)
    return {
        "inputs": [
            {"name": "features", "shape": [1, 30], "datatype": "FP32", "data": x.ravel().tolist()}
        ]
    }


def constant_classifier() -> bytes:
    """A model with tabular_classifier's inputs and outputs that always says 'malignant'."""
    zero = numpy_helper.from_array(np.array([0.0], np.float32), "zero")
    one = numpy_helper.from_array(np.array([1.0], np.float32), "one")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [
        helper.make_node("ReduceSum", ["features", "axes"], ["total"], keepdims=1),
        helper.make_node("Mul", ["total", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "one"], ["ones"]),
        helper.make_node("Cast", ["zeros"], ["label"], to=TensorProto.INT64),
        helper.make_node("Concat", ["ones", "zeros"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "always_malignant",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 30])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None, 1]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2]),
        ],
        [zero, one, axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


class Stream:
    """A client sending unversioned requests the whole time (every other one past the cache),
    recording every status, and the version that answered and how (X-Cache)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url = url
        self.headers = headers
        self.statuses: Counter[int] = Counter()
        self.versions: Counter[str] = Counter()
        self.errors: list[str] = []
        self.answers: Counter[tuple[str, str]] = Counter()  # (version, X-Cache)
        self.latencies: list[float] = []  # seconds, of every answered request
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=60) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                headers = {"Cache-Control": "no-store"} if n % 2 else {}
                started = time.perf_counter()
                try:
                    response = client.post(  # 50 rows from all over the data set
                        f"/v2/models/{MODEL}/infer", json=body(row=n % 50 * 11), headers=headers
                    )
                except httpx.TransportError as exc:
                    self.statuses[0] += 1
                    self.errors.append(repr(exc))
                    continue
                self.latencies.append(time.perf_counter() - started)
                self.statuses[response.status_code] += 1
                if response.status_code == 200:
                    version = response.json()["model_version"]
                    self.versions[version] += 1
                    self.answers[(version, response.headers.get("x-cache", ""))] += 1
                else:
                    self.errors.append(response.text)

    def success(self) -> float:
        """The share of requests answered 200."""
        return self.statuses[200] / max(1, sum(self.statuses.values()))

    def p99_s(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
