"""A /v1/embeddings body read as OpenAI's API reference has it; every refusal names the
field (`param`) the way OpenAI's SDKs show it."""

from __future__ import annotations

import orjson
import pytest

from gateway.openai.errors import InvalidParameter, openai_error_body
from gateway.openai.parse import embeddings_request


def parse(**document: object) -> object:
    return embeddings_request(orjson.dumps(document), max_inputs=3)


def test_every_input_form_of_the_reference() -> None:
    assert parse(model="m", input="a").inputs == ("a",)  # type: ignore[attr-defined]
    assert parse(model="m", input=["a", "b"]).inputs == ("a", "b")  # type: ignore[attr-defined]
    assert parse(model="m", input=[1, 2, 3]).inputs == ((1, 2, 3),)  # type: ignore[attr-defined]
    tokens = parse(model="m", input=[[1, 2], [3]])
    assert tokens.inputs == ((1, 2), (3,))  # type: ignore[attr-defined]
    full = parse(model="m", input="a", encoding_format="base64", dimensions=8, user="u")
    assert (full.encoding_format, full.dimensions) == ("base64", 8)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("document", "param", "says"),
    [
        ({"input": "a"}, "model", "'model' is required"),
        ({"model": "m"}, "input", "'input' is required"),
        ({"model": "m", "input": ""}, "input", "input 0 is an empty string"),
        ({"model": "m", "input": []}, "input", "must not be an empty list"),
        ({"model": "m", "input": ["a", 3]}, "input", "input 1 must be"),
        ({"model": "m", "input": [[1], []]}, "input", "input 1 must be"),
        ({"model": "m", "input": ["a"] * 4}, "input", "at most 3"),
        ({"model": "m", "input": "a", "encoding_format": "int8"}, "encoding_format", "'float'"),
        ({"model": "m", "input": "a", "dimensions": 0}, "dimensions", "positive integer"),
        ({"model": "m", "input": "a", "dimensions": True}, "dimensions", "positive integer"),
        ({"model": "m", "input": "a", "temperature": 1}, "temperature", "unrecognized"),
    ],
)
def test_refusals_name_the_field(document: dict[str, object], param: str, says: str) -> None:
    with pytest.raises(InvalidParameter) as refused:
        embeddings_request(orjson.dumps(document), max_inputs=3)
    assert refused.value.param == param and says in refused.value.message
    body = orjson.loads(openai_error_body(refused.value))["error"]
    assert body == {
        "message": refused.value.message,
        "type": "invalid_request_error",
        "param": param,
        "code": None,
    }


def test_a_body_that_is_not_a_json_object_is_refused() -> None:
    for body in (b"{", b"[1]"):
        with pytest.raises(InvalidParameter):
            embeddings_request(body, max_inputs=3)
