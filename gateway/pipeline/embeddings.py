"""`EmbeddingsPlane`: OpenAI-style embedding requests answered with a cache entry per input.

    EmbeddingsPlane.answer(request, key, directive, allow_stale)
      the model is exposed for embeddings (its config's `openai_*` parameters)   else 404
      each input's length in the model's own tokens (usage; too long: 400, or
        truncated where the request asks for it)
      each distinct input (identical inputs in one request are computed once) through
        ResultCache.get_or_compute, keyed by the row Triton would compute: the model, the
        version that serves it and its fingerprint, the text or the token ids, the tenant
      the inputs that miss everywhere reach Triton together: RowBatcher sends the rows of
        one event-loop turn as batches of the model's max_batch_size
      the answer in request order, each `index` its input's position; `dimensions`
        truncates and re-normalises where the model declares it can

A model is exposed by parameters in its config.pbtxt:
    openai_text_input        the BYTES input that takes one text per row (required)
    openai_embedding_output  the FP32 output with one vector per row (required)
    openai_tokenizer         tokenizer.json of the model's tokenizer, in the repository
    openai_max_input_tokens  the longest input, in tokens
    openai_tokens_model      MODEL:VERSION that takes token ids (`input_ids`,
                             `attention_mask`) for inputs given as token lists
    openai_dimensions        "truncate": `dimensions` keeps the first N and re-normalises
    openai_model_name        the name clients use (default: the Triton model's)
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
from numpy.typing import NDArray

from auth import KeyRecord
from gateway.cache import Directive, Outcome
from gateway.control.catalog import ModelCatalog, ModelView, config_parameter
from gateway.errors import BadRequest, GatewayError, NotFound
from gateway.pipeline.dataplane import Answer
from gateway.pipeline.row_cache import Row, RowCache
from gateway.pipeline.targets import Target, cache_tenant
from gateway.protocol import EncodedResponse
from gateway.protocol.datatypes import encode_bytes_elements
from gateway.protocol.types import InferRequest, InferResult, Tensor

Input = str | tuple[int, ...]
JSON = b"application/json"
_CACHED = frozenset({Outcome.HIT, Outcome.COALESCED})


@dataclass(frozen=True, slots=True)
class EmbeddingsRequest:
    """A `POST /v1/embeddings`, checked for form (the front says what is malformed)."""

    model: str  # as the client names it
    inputs: tuple[Input, ...]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    truncate: bool = False  # an extension: cut inputs to the model's longest instead of 400


@dataclass(frozen=True, slots=True)
class EmbeddingModel:
    """A Triton model as exposed to embedding clients (from its config's parameters)."""

    name: str
    view: ModelView
    text_input: str
    output: str
    tokenizer: Path | None
    max_tokens: int | None
    tokens_model: tuple[str, str] | None
    truncatable: bool

    @classmethod
    def of(cls, view: ModelView, repository: Path | None) -> EmbeddingModel | None:
        config = view.config
        text_input = config_parameter(config, "openai_text_input")
        output = config_parameter(config, "openai_embedding_output")
        if not text_input or not output:
            return None
        tokenizer = config_parameter(config, "openai_tokenizer")
        max_tokens = config_parameter(config, "openai_max_input_tokens")
        tokens_model = config_parameter(config, "openai_tokens_model")
        return cls(
            name=config_parameter(config, "openai_model_name") or view.name,
            view=view,
            text_input=text_input,
            output=output,
            tokenizer=repository / tokenizer if tokenizer and repository else None,
            max_tokens=int(max_tokens) if max_tokens else None,
            tokens_model=_model_version(tokens_model) if tokens_model else None,
            truncatable=config_parameter(config, "openai_dimensions") == "truncate",
        )


class EmbeddingsPlane:
    """Answers embedding requests from per-input cache entries or from Triton."""

    def __init__(
        self,
        catalog: ModelCatalog,
        rows: RowCache,
        repository: Path | None,
        cache_per_tenant: bool,
    ) -> None:
        self._catalog = catalog
        self._rows = rows
        self._repository = repository
        self._cache_per_tenant = cache_per_tenant

    def models(self) -> list[EmbeddingModel]:
        """The exposed models, by the name clients use."""
        exposed = (EmbeddingModel.of(view, self._repository) for view in self._catalog.models())
        return sorted((m for m in exposed if m is not None), key=lambda m: m.name)

    def model(self, name: str) -> EmbeddingModel:
        """The exposed model clients call `name`; NotFound otherwise."""
        for exposed in self.models():
            if exposed.name == name:
                return exposed
        raise NotFound(f"The model '{name}' does not exist or is not served for embeddings")

    async def answer(
        self,
        request: EmbeddingsRequest,
        exposed: EmbeddingModel,
        key: KeyRecord,
        directive: Directive = Directive.READ_AND_WRITE,
        allow_stale: bool = True,
    ) -> Answer:
        """The answer to `request` for `exposed` (the model it names: `model()`)."""
        if request.dimensions is not None and not exposed.truncatable:
            raise BadRequest(f"the model '{request.model}' does not support 'dimensions'")
        inputs, tokens = self._measured(exposed, request)
        tenant = cache_tenant(key, self._cache_per_tenant, exposed.view)
        rows = [self._row(exposed, value) for value in inputs]
        parts = await self._rows.results(rows, tenant, directive, allow_stale)
        vectors = [self._vector(exposed, result, request.dimensions) for result, _ in parts]
        body = _response(request, vectors, tokens)
        cached = sum(outcome in _CACHED for _, outcome in parts)
        return Answer(
            EncodedResponse(body, JSON, None),
            Outcome.combined(outcome for _, outcome in parts),
            parts[0][0].version,
            cached_parts=(cached, len(parts)),
        )

    def _measured(
        self, exposed: EmbeddingModel, request: EmbeddingsRequest
    ) -> tuple[list[Input], int]:
        """The inputs as they will be embedded (cut where asked) and their tokens in all."""
        tokenizer = _tokenizer(exposed.tokenizer) if exposed.tokenizer else None
        counts = _token_counts(tokenizer, request.inputs)
        limit = exposed.max_tokens
        inputs = list(request.inputs)
        for index, count in enumerate(counts):
            if limit is None or count <= limit:
                continue
            if not request.truncate:
                raise BadRequest(
                    f"input {index} is {count} tokens long; the model '{request.model}' takes "
                    f'at most {limit} (send "truncate": true to cut longer inputs)'
                )
            inputs[index], counts[index] = _cut(tokenizer, inputs[index], limit)
        return inputs, sum(counts)

    def _row(self, exposed: EmbeddingModel, value: Input) -> Row:
        """The one-row request that computes `value`'s vector, and where it is cached."""
        if isinstance(value, str):
            view = exposed.view
            target = Target.of(view, "")
            encoded = encode_bytes_elements([value.encode()])
            text = Tensor(exposed.text_input, "BYTES", (1, 1), encoded)
            version = target.version if target is not None else ""
            return Row(InferRequest(view.name, version, (text,)), view, target)
        if exposed.tokens_model is None:
            raise BadRequest(f"the model '{exposed.name}' takes text, not token ids")
        model, version = exposed.tokens_model
        encoder = self._catalog.get(model)
        if encoder is None:
            raise GatewayError(f"the model '{model}' that takes token ids is not ready")
        ids = np.asarray(value, dtype="<i8").reshape(1, -1)
        tensors = (
            Tensor("input_ids", "INT64", ids.shape, ids.tobytes()),
            Tensor("attention_mask", "INT64", ids.shape, np.ones_like(ids).tobytes()),
        )
        target = Target.of(encoder, version)
        pinned = target.version if target is not None else version
        return Row(InferRequest(model, pinned, tensors), encoder, target)

    def _vector(
        self, exposed: EmbeddingModel, result: InferResult, dimensions: int | None
    ) -> NDArray[np.float32]:
        tensor = next((t for t in result.outputs if t.name == exposed.output), None)
        if tensor is None or tensor.datatype != "FP32":
            raise GatewayError(f"Triton's answer has no FP32 output '{exposed.output}'")
        vector = np.frombuffer(tensor.data, dtype="<f4")
        if dimensions is None:
            return vector
        if not 0 < dimensions <= len(vector):
            raise BadRequest(f"'dimensions' must be between 1 and {len(vector)}")
        cut = vector[:dimensions]
        norm = float(np.linalg.norm(cut))
        return (cut / norm).astype("<f4") if norm > 0 else cut


def _model_version(text: str) -> tuple[str, str]:
    model, _, version = text.partition(":")
    return model, version


@functools.cache
def _tokenizer(path: Path) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def _token_counts(tokenizer: Any, inputs: Iterable[Input]) -> list[int]:
    """Each input's length in the model's tokens (with its special tokens)."""
    values = list(inputs)
    texts = [value for value in values if isinstance(value, str)]
    if not texts:
        return [len(value) for value in values]
    if tokenizer is None:
        raise GatewayError("this model's tokenizer is not configured (openai_tokenizer)")
    counted = iter([len(encoding.ids) for encoding in tokenizer.encode_batch(texts)])
    return [next(counted) if isinstance(value, str) else len(value) for value in values]


def _cut(tokenizer: Any, value: Input, limit: int) -> tuple[Input, int]:
    """`value` cut to `limit` tokens, and its length then. A text keeps the characters of
    its first tokens, room left for the special tokens the tokenizer adds around it."""
    if not isinstance(value, str):
        return value[:limit], min(limit, len(value))
    specials = len(tokenizer.encode("").ids)  # [CLS] and [SEP] for BERT's WordPiece
    kept = max(0, limit - specials)
    offsets = tokenizer.encode(value).offsets
    cut = value[: offsets[(1 if specials else 0) + kept - 1][1]] if kept else ""
    return cut, len(tokenizer.encode(cut).ids)


def _response(request: EmbeddingsRequest, vectors: list[NDArray[np.float32]], tokens: int) -> bytes:
    data: list[dict[str, Any]] = []
    for index, vector in enumerate(vectors):
        embedding: Any = (
            base64.b64encode(vector.astype("<f4").tobytes()).decode()
            if request.encoding_format == "base64"
            else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    document = {
        "object": "list",
        "data": data,
        "model": request.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
