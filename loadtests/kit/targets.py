"""The models every benchmark drives, as each system addresses them: paths and bodies for
Triton, the gateway and the alternatives, plain and with a varying value (for misses)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from tritonclient.grpc import service_pb2

from loadtests.kit.wrk import post_script, unique_post_script

TRITON_MODELS = ["tabular_classifier", "text_tokenizer", "text_encoder", "text_embedding"]
TEXT = "wireless noise cancelling headphones with long battery life"


@dataclass(frozen=True)
class Target:
    """A model as each system addresses it."""

    name: str
    triton_path: str  # also the gateway's
    alternative: str  # the alternatives' model name
    body: str  # v2 JSON request
    unique: tuple[str, str]  # the body around a unique "<counter>.5, <run>" insertion
    bentoml_path: str
    bentoml_body: str
    bentoml_unique: tuple[str, str]
    grpc: service_pb2.ModelInferRequest

    def wrk_script(self, requests: str, headers: dict[str, str]) -> str:
        """wrk's Lua for `requests`: "hit" repeats one body, "miss" sends a unique one each."""
        if requests == "hit":
            return post_script(self.body, headers)
        return unique_post_script(*self.unique, headers, run_id=random.randrange(1, 16_000_000))


def targets() -> list[Target]:
    features = [round(0.5 + 0.1 * i, 1) for i in range(30)]
    data = ", ".join(str(v) for v in features)
    tabular = (
        '{"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP32", '
        f'"data": [{data}]}}]}}'
    )
    tabular_unique = (tabular[: tabular.index("[0.5,") + 1], tabular[tabular.index(", 0.7,") :])
    bento_tabular = f'{{"features": [[{data}]]}}'
    bento_tabular_unique = (
        bento_tabular[: bento_tabular.index("[[") + 2],
        bento_tabular[bento_tabular.index(", 0.7,") :],
    )
    text = (
        '{"inputs": [{"name": "text", "shape": [1, 1], "datatype": "BYTES", '
        f'"data": ["{TEXT}"]}}]}}'
    )
    text_unique = (text[: text.index(TEXT)] + "query ", text[text.index(TEXT) + len(TEXT) :])
    bento_text = f'{{"texts": ["{TEXT}"]}}'
    bento_text_unique = ('{"texts": ["query ', '"]}')

    def grpc_tabular(version: str) -> service_pb2.ModelInferRequest:
        request = service_pb2.ModelInferRequest(
            model_name="tabular_classifier", model_version=version
        )
        tensor = request.inputs.add()
        tensor.name, tensor.datatype = "features", "FP32"
        tensor.shape.extend([1, 30])
        request.raw_input_contents.append(np.asarray([features], dtype=np.float32).tobytes())
        return request

    grpc_text = service_pb2.ModelInferRequest(model_name="text_embedding")
    tensor = grpc_text.inputs.add()
    tensor.name, tensor.datatype = "text", "BYTES"
    tensor.shape.extend([1, 1])
    grpc_text.raw_input_contents.append(len(TEXT).to_bytes(4, "little") + TEXT.encode())
    return [
        Target(
            "smallest (tabular v1, logistic regression)",
            "/v2/models/tabular_classifier/versions/1/infer",
            "tabular_v1",
            tabular,
            tabular_unique,
            "/tabular_v1",
            bento_tabular,
            bento_tabular_unique,
            grpc_tabular("1"),
        ),
        Target(
            "tabular_classifier (v2, gradient-boosted trees)",
            "/v2/models/tabular_classifier/infer",
            "tabular",
            tabular,
            tabular_unique,
            "/tabular",
            bento_tabular,
            bento_tabular_unique,
            grpc_tabular(""),
        ),
        Target(
            "text_embedding (MiniLM, fp32)",
            "/v2/models/text_embedding/infer",
            "text_embedding",
            text,
            text_unique,
            "/text_embedding",
            bento_text,
            bento_text_unique,
            grpc_text,
        ),
    ]
