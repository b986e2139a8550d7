"""The quality gate: a candidate version's answers on the model's probe set, against the
answers of the version it would replace.

`<repository>/<model>/probes.json` (written by `gateway models build`) holds the probe set
as v2 request bodies (`{"requests": [{"inputs": ...}, ...], "output": name}`, or one
request's `"inputs"`) and the name of the output to compare. The probe set is kept apart
from anything the build tuned on. Classifier labels (integer outputs) are compared by
agreement: the share of identical rows, at least `quality_gate_min_agreement` (config
parameter, default GATEWAY_QUALITY_GATE_MIN_AGREEMENT). Float outputs (embeddings) are
compared row by row by cosine: the worst row at least `quality_gate_min_cosine` (default
GATEWAY_QUALITY_GATE_MIN_COSINE); the 1st percentile and the mean are reported with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from gateway.backends.triton import TritonClient
from gateway.control.lifecycle.errors import LifecycleError
from gateway.protocol import decode_infer_request
from gateway.protocol.datatypes import NUMPY_DTYPES
from gateway.protocol.types import InferRequest, InferResult, Tensor


@dataclass(frozen=True)
class GateResult:
    """What a comparison found: `value` (agreement, or the worst cosine) against
    `threshold`, with the tail of the cosines."""

    measure: str  # "agreement" or "min_cosine"
    value: float
    threshold: float
    rows: int
    mean: float
    p1: float | None = None  # cosines only

    @property
    def passed(self) -> bool:
        return self.value >= self.threshold

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "measure": self.measure,
            "value": round(self.value, 6),
            "threshold": self.threshold,
            "rows": self.rows,
            "mean": round(self.mean, 6),
        }
        if self.p1 is not None:
            described["p1"] = round(self.p1, 6)
        return described


def judge(
    new: NDArray[Any], old: NDArray[Any], min_agreement: float, min_cosine: float
) -> GateResult:
    """Compare two answers to the same rows: labels by agreement, floats by cosine."""
    if new.dtype.kind in "iub":
        agreed = row_agreement(new, old)
        share = float(agreed.mean())
        return GateResult("agreement", share, min_agreement, len(agreed), share)
    similarity = row_cosines(new, old)
    return GateResult(
        "min_cosine",
        float(similarity.min()),
        min_cosine,
        len(similarity),
        float(similarity.mean()),
        float(np.percentile(similarity, 1)),
    )


def row_agreement(new: NDArray[Any], old: NDArray[Any]) -> NDArray[np.bool_]:
    """Per row (first axis): whether every element is the same."""
    result: NDArray[np.bool_] = np.all(
        new.reshape(len(new), -1) == old.reshape(len(old), -1), axis=1
    )
    return result


def row_cosines(new: NDArray[Any], old: NDArray[Any]) -> NDArray[np.float64]:
    """Per row (first axis): the cosine of the two answers; 1.0 for two zero rows."""
    a = new.reshape(len(new), -1).astype(np.float64)
    b = old.reshape(len(old), -1).astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = np.sum(a * b, axis=1)
    result: NDArray[np.float64] = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 1.0)
    return result


def probe_requests(model_dir: Path, version: str) -> list[InferRequest] | None:
    """The probe set as requests to `version`, or None when the model has none."""
    path = model_dir / "probes.json"
    if not path.exists():
        return None
    document = orjson.loads(path.read_bytes())
    bodies = document.get("requests") or [{"inputs": document["inputs"]}]
    outputs = [{"name": document["output"]}]
    return [
        decode_infer_request(
            model_dir.name, version, orjson.dumps({"inputs": b["inputs"], "outputs": outputs}), None
        )
        for b in bodies
    ]


async def compare(
    triton: TritonClient,
    model_dir: Path,
    candidate: str,
    current: str,
    min_agreement: float,
    min_cosine: float,
) -> GateResult:
    requests = probe_requests(model_dir, candidate)
    if requests is None:
        raise LifecycleError(f"model '{model_dir.name}' has no probe set (probes.json)")
    new, old = [], []
    for request in requests:
        new.append(_rows(output_array(await triton.infer(request))))
        old.append(_rows(output_array(await triton.infer(_for_version(request, current)))))
    return judge(np.concatenate(new), np.concatenate(old), min_agreement, min_cosine)


def _for_version(request: InferRequest, version: str) -> InferRequest:
    return InferRequest(request.model, version, request.inputs, request.outputs)


def _rows(array: NDArray[Any]) -> NDArray[Any]:
    return array.reshape(len(array), -1)


def output_array(result: InferResult, name: str | None = None) -> NDArray[Any]:
    """One output of a result as an array (the only one when `name` is None)."""
    tensors = [t for t in result.outputs if name is None or t.name == name]
    if len(tensors) != 1:
        raise LifecycleError(f"the answer has no single output {name or ''}".rstrip())
    return tensor_array(tensors[0])


def tensor_array(tensor: Tensor) -> NDArray[Any]:
    dtype = NUMPY_DTYPES.get(tensor.datatype)
    if dtype is None:
        raise LifecycleError(f"output '{tensor.name}' is {tensor.datatype}: not comparable")
    return np.frombuffer(tensor.data, dtype=dtype).reshape(tensor.shape)
