"""The quality gate: a candidate version's answers on the model's probe set, against the
answers of the version it would replace.

`<repository>/<model>/probes.json` (written by `gateway models build`) holds a v2 request
body and the name of the output to compare. Classifier labels (integer outputs) are
compared by agreement: the share of identical answers, at least
`quality_gate_min_agreement` (config parameter, default GATEWAY_QUALITY_GATE_MIN_AGREEMENT).
Float outputs (embeddings) are compared row by row by cosine, the worst row at least
`quality_gate_min_cosine` (default GATEWAY_QUALITY_GATE_MIN_COSINE).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from gateway.lifecycle.errors import LifecycleError
from gateway.protocol import decode_infer_request
from gateway.protocol.datatypes import NUMPY_DTYPES
from gateway.protocol.types import InferRequest, InferResult
from gateway.triton import TritonClient


@dataclass(frozen=True)
class GateResult:
    """What the comparison found."""

    measure: str  # "agreement" or "min_cosine"
    value: float
    threshold: float

    @property
    def passed(self) -> bool:
        return self.value >= self.threshold

    def describe(self) -> dict[str, Any]:
        return {"measure": self.measure, "value": round(self.value, 6), "threshold": self.threshold}


def probe_request(model_dir: Path, version: str) -> InferRequest | None:
    """The probe set as a request to `version`, or None when the model has none."""
    path = model_dir / "probes.json"
    if not path.exists():
        return None
    document = orjson.loads(path.read_bytes())
    body = orjson.dumps({"inputs": document["inputs"], "outputs": [{"name": document["output"]}]})
    return decode_infer_request(model_dir.name, version, body, None)


async def compare(
    triton: TritonClient,
    model_dir: Path,
    candidate: str,
    current: str,
    min_agreement: float,
    min_cosine: float,
) -> GateResult:
    request = probe_request(model_dir, candidate)
    if request is None:
        raise LifecycleError(f"model '{model_dir.name}' has no probe set (probes.json)")
    new = _output(await triton.infer(request))
    old = _output(await triton.infer(_for_version(request, current)))
    if new.dtype.kind in "iub":
        return GateResult("agreement", float(np.mean(new == old)), min_agreement)
    a, b = new.reshape(len(new), -1), old.reshape(len(old), -1)
    rows = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return GateResult("min_cosine", float(rows.min()), min_cosine)


def _for_version(request: InferRequest, version: str) -> InferRequest:
    return InferRequest(request.model, version, request.inputs, request.outputs)


def _output(result: InferResult) -> NDArray[Any]:
    (tensor,) = result.outputs
    dtype = NUMPY_DTYPES.get(tensor.datatype)
    if dtype is None:
        raise LifecycleError(f"output '{tensor.name}' is {tensor.datatype}: not comparable")
    return np.frombuffer(tensor.data, dtype=dtype).reshape(tensor.shape)
