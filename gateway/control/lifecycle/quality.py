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

A model without a probes.json (one added from a bare ONNX file) gets a generated probe set
(`generated_probes`): 32 rows of seeded random values per input, by datatype (floats in
[0, 1), integers 0 to 9, booleans, BYTES of a few digits), the first output compared. It is
what warms a new version up, and the gate's evidence until someone writes a probes.json of
real inputs; a datatype that cannot be generated gets an error saying what file to write.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from gateway.backends.triton import TritonClient
from gateway.control.lifecycle.config_file import (
    datatype_name,
    described_type,
    read_config,
    v2_datatype,
)
from gateway.control.lifecycle.errors import LifecycleError
from gateway.protocol import decode_infer_request
from gateway.protocol.datatypes import NUMPY_DTYPES, decode_bytes_elements, encode_bytes_elements
from gateway.protocol.types import InferRequest, InferResult, RequestedOutput, Tensor


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
    probes: str = "probes.json"  # or "generated": random inputs (no probes.json)

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
            "probes": self.probes,
        }
        if self.p1 is not None:
            described["p1"] = round(self.p1, 6)
        return described


def judge(
    new: NDArray[Any], old: NDArray[Any], min_agreement: float, min_cosine: float
) -> GateResult:
    """Compare two answers to the same rows: labels and texts by agreement, floats by
    cosine."""
    if new.dtype.kind in "iubO":
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


PROBES_EXAMPLE = (
    '{"inputs": [{"name": "INPUT0", "datatype": "INT32", "shape": [2, 16], "data": [...]}], '
    '"output": "OUTPUT0"}'
)


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


def generated_probes(model_dir: Path, version: str, rows: int = 32) -> list[InferRequest]:
    """Seeded random requests to `version` from the model's config (see the docstring)."""
    config = read_config(model_dir)
    batched = config.max_batch_size > 0
    count = min(rows, config.max_batch_size) if batched else 1
    random = np.random.default_rng(0)
    inputs = []
    for tensor in config.input:
        config_type = datatype_name(tensor.data_type)
        datatype = v2_datatype(config_type)
        shape = tuple([count] * batched + [4 if d < 0 else d for d in tensor.dims])
        if datatype == "BYTES":
            values = random.integers(0, 1000, size=shape)
            data = encode_bytes_elements([str(v).encode() for v in values.ravel()])
        elif datatype == "BOOL":
            data = random.integers(0, 2, size=shape).astype("?").tobytes()
        elif datatype in NUMPY_DTYPES and datatype.startswith("FP"):
            data = random.random(size=shape).astype(NUMPY_DTYPES[datatype]).tobytes()
        elif datatype in NUMPY_DTYPES:
            data = random.integers(0, 10, size=shape).astype(NUMPY_DTYPES[datatype]).tobytes()
        else:
            raise LifecycleError(
                f"input '{tensor.name}' ({described_type(config_type)}) cannot be generated: "
                f"write {model_dir / 'probes.json'} with real inputs, e.g. {PROBES_EXAMPLE}"
            )
        inputs.append(Tensor(tensor.name, datatype, shape, data))
    output = RequestedOutput(config.output[0].name)
    request = InferRequest(model_dir.name, version, tuple(inputs), (output,))
    return [request] if batched else [request] * 4


async def compare(
    triton: TritonClient,
    model_dir: Path,
    candidate: str,
    current: str,
    min_agreement: float,
    min_cosine: float,
) -> GateResult:
    requests = probe_requests(model_dir, candidate)
    probes = "probes.json"
    if requests is None:
        requests, probes = generated_probes(model_dir, candidate), "generated"
    new, old = [], []
    for request in requests:
        new.append(_rows(output_array(await triton.infer(request))))
        old.append(_rows(output_array(await triton.infer(_for_version(request, current)))))
    result = judge(np.concatenate(new), np.concatenate(old), min_agreement, min_cosine)
    return replace(result, probes=probes)


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
    if tensor.datatype == "BYTES":  # texts: compared element by element
        elements = decode_bytes_elements(tensor.data)
        return np.array(elements, dtype=np.object_).reshape(tensor.shape)
    dtype = NUMPY_DTYPES.get(tensor.datatype)
    if dtype is None:
        raise LifecycleError(f"output '{tensor.name}' is {tensor.datatype}: not comparable")
    return np.frombuffer(tensor.data, dtype=dtype).reshape(tensor.shape)
