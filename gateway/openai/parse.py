"""A `POST /v1/embeddings` body as OpenAI's API reference has it, checked field by field:

model            string, required
input            a string, a list of strings, a list of token ids, or a list of lists
                 of token ids; never empty, nor an empty string; at most
                 GATEWAY_OPENAI_MAX_INPUTS inputs
encoding_format  "float" (default) or "base64" (what the official SDKs ask for)
dimensions       a positive integer (the model must support it)
user             a string; accepted and not used
truncate         (an extension) true: inputs longer than the model takes are cut
"""

from __future__ import annotations

from typing import Any, Literal, cast

import orjson

from gateway.openai.errors import InvalidParameter
from gateway.pipeline.embeddings import EmbeddingsRequest, Input

KNOWN = frozenset({"model", "input", "encoding_format", "dimensions", "user", "truncate"})


def embeddings_request(body: bytes, max_inputs: int) -> EmbeddingsRequest:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidParameter("body", f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidParameter("body", "the request body must be a JSON object")
    unknown = sorted(set(document) - KNOWN)
    if unknown:
        raise InvalidParameter(unknown[0], f"unrecognized request argument: {unknown[0]}")
    model = document.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidParameter("model", "'model' is required: the name of an embedding model")
    encoding = document.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise InvalidParameter(
            "encoding_format", f"'encoding_format' must be 'float' or 'base64', not {encoding!r}"
        )
    dimensions = document.get("dimensions")
    if dimensions is not None and (type(dimensions) is not int or dimensions < 1):
        raise InvalidParameter("dimensions", "'dimensions' must be a positive integer")
    user = document.get("user")
    if user is not None and not isinstance(user, str):
        raise InvalidParameter("user", "'user' must be a string")
    truncate = document.get("truncate", False)
    if not isinstance(truncate, bool):
        raise InvalidParameter("truncate", "'truncate' must be true or false")
    return EmbeddingsRequest(
        model,
        _inputs(document.get("input"), max_inputs),
        cast(Literal["float", "base64"], encoding),
        dimensions,
        truncate,
    )


def _inputs(value: Any, max_inputs: int) -> tuple[Input, ...]:
    if value is None:
        raise InvalidParameter("input", "'input' is required")
    if isinstance(value, str):
        values: list[Any] = [value]
    elif isinstance(value, list) and value and all(_is_token(v) for v in value):
        values = [value]  # one input given as token ids
    elif isinstance(value, list):
        values = value
    else:
        raise InvalidParameter(
            "input", "'input' must be a string, a list of strings or a list of token lists"
        )
    if not values:
        raise InvalidParameter("input", "'input' must not be an empty list")
    if len(values) > max_inputs:
        raise InvalidParameter(
            "input", f"'input' has {len(values)} inputs; at most {max_inputs} are accepted"
        )
    return tuple(_one(index, item) for index, item in enumerate(values))


def _one(index: int, item: Any) -> Input:
    if isinstance(item, str):
        if not item:
            raise InvalidParameter("input", f"input {index} is an empty string")
        return item
    if isinstance(item, list) and item and all(_is_token(token) for token in item):
        return tuple(item)
    raise InvalidParameter(
        "input", f"input {index} must be a non-empty string or a non-empty list of token ids"
    )


def _is_token(value: Any) -> bool:
    return type(value) is int and 0 <= value < 2**31
