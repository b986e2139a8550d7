"""The usual hand-written service: FastAPI + ONNX Runtime in-process, v2-style JSON.

uvicorn loadtests.alternatives.fastapi_onnx:app --port 8100

POST /v2/models/{name}/infer   name: tabular_v1 | tabular | text_embedding
body: {"inputs": [{"name", "shape", "datatype", "data"}]}  (the same JSON as the gateway's)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from loadtests.alternatives.onnx_models import TextEncoder, session

app = FastAPI()
SESSIONS = {"tabular_v1": session("tabular_v1"), "tabular": session("tabular")}
TEXT = TextEncoder()


class Tensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class Request(BaseModel):
    inputs: list[Tensor]


@app.post("/v2/models/{name}/infer")
def infer(name: str, request: Request) -> dict[str, Any]:
    tensor = request.inputs[0]
    if name == "text_embedding":
        embedding = TEXT([str(t) for t in tensor.data])
        outputs = [
            {
                "name": "embedding",
                "datatype": "FP32",
                "shape": list(embedding.shape),
                "data": embedding.ravel().tolist(),
            }
        ]
    elif name in SESSIONS:
        x = np.asarray(tensor.data, dtype=np.float32).reshape(tensor.shape)
        label, probabilities = SESSIONS[name].run(["label", "probabilities"], {"features": x})
        outputs = [
            {
                "name": "label",
                "datatype": "INT64",
                "shape": list(label.shape),
                "data": label.ravel().tolist(),
            },
            {
                "name": "probabilities",
                "datatype": "FP32",
                "shape": list(probabilities.shape),
                "data": probabilities.ravel().tolist(),
            },
        ]
    else:
        raise HTTPException(404, f"unknown model {name}")
    return {"model_name": name, "outputs": outputs}
