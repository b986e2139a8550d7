"""What `gateway up` prints once everything runs: the URL, the models and a curl to paste."""

from __future__ import annotations

import json
import shlex
from typing import Any

import httpx


def describe_models(triton_http_url: str) -> list[dict[str, Any]]:
    """Triton's repository index: name, version and state of every model version."""
    try:
        response = httpx.post(f"{triton_http_url}/v2/repository/index", json={}, timeout=5.0)
        response.raise_for_status()
    except httpx.HTTPError:
        return []
    index: list[dict[str, Any]] = response.json()
    return index


def example_request(triton_http_url: str, model: str) -> dict[str, Any] | None:
    """A request of zeros with batch 1 that `model` accepts (None for non-numeric inputs)."""
    try:
        metadata = httpx.get(f"{triton_http_url}/v2/models/{model}", timeout=5.0).json()
    except httpx.HTTPError:
        return None
    inputs = []
    for tensor in metadata.get("inputs", []):
        shape = [1 if dim < 0 else dim for dim in tensor["shape"]]
        count = 1
        for dim in shape:
            count *= dim
        if tensor["datatype"] == "BYTES":
            data: list[Any] = ["hello"] * count
        elif tensor["datatype"].startswith(("FP", "INT", "UINT")):
            data = [0] * count
        else:
            return None
        inputs.append(
            {"name": tensor["name"], "shape": shape, "datatype": tensor["datatype"], "data": data}
        )
    return {"inputs": inputs}


def banner(
    gateway_url: str,
    triton_http_url: str,
    extra_headers: dict[str, str],
    grpc_address: str | None = None,
) -> str:
    index = describe_models(triton_http_url)
    lines = [f"gateway ready at {gateway_url}"]
    if grpc_address:
        lines.append(f"gRPC (KServe v2, tritonclient.grpc) at {grpc_address}")
    lines.append("models:")
    for entry in index:
        lines.append(
            f"  {entry.get('name')} version {entry.get('version', '-')}: "
            f"{entry.get('state', 'unknown')}"
        )
    ready = sorted({e["name"] for e in index if e.get("state") == "READY"})
    example = example_request(triton_http_url, ready[0]) if ready else None
    if example is not None:
        # Double quotes, so a value like "Bearer $GATEWAY_KEY" expands in the shell.
        header_args = " ".join(f'-H "{name}: {value}"' for name, value in extra_headers.items())
        lines += [
            "try:",
            f"  curl -s {gateway_url}/v2/models/{ready[0]}/infer "
            + (header_args + " " if header_args else "")
            + f"-H 'Content-Type: application/json' -d {shlex.quote(json.dumps(example))}",
        ]
        if grpc_address:
            lines += ["  " + _grpc_example(grpc_address, ready[0], example)]
    return "\n".join(lines)


def _grpc_example(address: str, model: str, example: dict[str, Any]) -> str:
    """A one-line tritonclient.grpc call (metadata keys are lower-case in gRPC)."""
    tensor = example["inputs"][0]
    code = (
        "import os, numpy as np, tritonclient.grpc as g; "
        f"c = g.InferenceServerClient({address!r}); "
        f"x = g.InferInput({tensor['name']!r}, {tensor['shape']!r}, {tensor['datatype']!r}); "
        f"x.set_data_from_numpy(np.array({tensor['data']!r}, dtype=np.float32)"
        f".reshape({tensor['shape']!r})); "
        f"print(c.infer({model!r}, [x], headers={{'authorization': "
        "'Bearer ' + os.environ['GATEWAY_KEY']}).get_response())"
    )
    return f"python -c {shlex.quote(code)}"
