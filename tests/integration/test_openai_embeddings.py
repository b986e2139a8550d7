"""OpenAI's embeddings API through the real stack, called the way embedding users call it:
the official `openai` SDK (float, and its default base64) and LangChain's OpenAIEmbeddings;
vectors against direct Triton, usage against the model's own tokenizer, errors as the SDK
expects them, and the per-input cache checked against Triton's own statistics."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import openai
import pytest
import tritonclient.http as httpclient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_openai import OpenAIEmbeddings
from numpy.typing import NDArray
from tokenizers import Tokenizer

from devstack import EmbeddedTriton
from tests.support.admin import create_key
from tests.support.data import REPOSITORY
from tests.support.keys import ADMIN_KEY, auth_headers
from tests.support.polling import eventually

MODEL = "text_embedding"
TEXTS = (
    "the quick brown fox jumps over the lazy dog",
    "wireless noise cancelling headphones with long battery life",
    "Der schnelle braune Fuchs springt über den faulen Hund",
    "ok",
)


@pytest.fixture(scope="module")
def sdk(gateway_url: str) -> Iterator[openai.OpenAI]:
    with client_for(gateway_url, ADMIN_KEY) as client:
        yield client


def client_for(gateway_url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway_url}/v1", api_key=key, max_retries=0)


@pytest.fixture(scope="module")
def direct(triton: EmbeddedTriton) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(
        triton.endpoints.http_url.removeprefix("http://"), network_timeout=120
    )
    yield client
    client.close()


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(REPOSITORY / "text_tokenizer/1/tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def triton_vectors(
    client: httpclient.InferenceServerClient, texts: list[str], model: str = MODEL
) -> NDArray[np.float32]:
    tensor = httpclient.InferInput("text", [len(texts), 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[t.encode()] for t in texts], dtype=np.object_))
    embedding: NDArray[np.float32] = client.infer(model, [tensor]).as_numpy("embedding")
    return embedding


def cosines(a: NDArray[Any], b: NDArray[Any]) -> NDArray[Any]:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    result: NDArray[Any] = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return result


def rows_computed(client: httpclient.InferenceServerClient, model: str = MODEL) -> int:
    """The rows Triton has computed for `model` (its inference count, over its versions)."""
    stats = client.get_inference_statistics(model)["model_stats"]
    return sum(int(s["inference_count"]) for s in stats)


def settled(client: httpclient.InferenceServerClient, rows: int) -> None:
    """Triton's count reaches `rows` (it counts a request just after answering it), and is
    not past it."""
    eventually(lambda: rows_computed(client) >= rows, 10, f"{rows} rows computed")
    assert rows_computed(client) == rows


def test_the_sdk_gets_triton_s_vectors_in_float_and_in_its_default_base64(
    sdk: openai.OpenAI, direct: httpclient.InferenceServerClient, tokenizer: Tokenizer
) -> None:
    expected = triton_vectors(direct, list(TEXTS))
    as_floats = sdk.embeddings.create(model=MODEL, input=list(TEXTS), encoding_format="float")
    default = sdk.embeddings.create(model=MODEL, input=list(TEXTS))  # the SDK asks for base64
    for answer in (as_floats, default):
        assert [d.index for d in answer.data] == list(range(len(TEXTS)))
        vectors = np.array([d.embedding for d in answer.data])
        assert vectors.shape == (len(TEXTS), 384)
        assert cosines(vectors, expected).min() >= 0.99999
        tokens = sum(len(e.ids) for e in tokenizer.encode_batch(list(TEXTS)))
        assert answer.usage.prompt_tokens == answer.usage.total_tokens == tokens
        assert answer.model == MODEL
    one = sdk.embeddings.create(model=MODEL, input=TEXTS[0], encoding_format="float")
    assert (
        len(one.data) == 1 and cosines(np.array([one.data[0].embedding]), expected[:1]) >= 0.99999
    )


def test_langchain_openai_embeddings(
    gateway_url: str, direct: httpclient.InferenceServerClient
) -> None:
    embeddings = OpenAIEmbeddings(  # type: ignore[call-arg]  # pydantic aliases
        model=MODEL,
        base_url=f"{gateway_url}/v1",
        api_key=ADMIN_KEY,
        check_embedding_ctx_length=False,  # OpenAI's tokenizer's ids mean nothing to this model
        max_retries=0,
    )
    documents = np.array(embeddings.embed_documents(list(TEXTS)))
    query = np.array([embeddings.embed_query(TEXTS[1])])
    expected = triton_vectors(direct, list(TEXTS))
    assert cosines(documents, expected).min() >= 0.99999
    assert cosines(query, expected[1:2]).min() >= 0.99999


def test_token_ids_embed_as_their_text_does(
    sdk: openai.OpenAI, tokenizer: Tokenizer, direct: httpclient.InferenceServerClient
) -> None:
    ids = [tokenizer.encode(text).ids for text in TEXTS[:3]]
    answer = sdk.embeddings.create(model=MODEL, input=ids, encoding_format="float")
    vectors = np.array([d.embedding for d in answer.data])
    assert cosines(vectors, triton_vectors(direct, list(TEXTS[:3]))).min() >= 0.9999
    assert answer.usage.prompt_tokens == sum(map(len, ids))


def test_the_models_listed_are_the_exposed_ones_in_the_key_s_scope(
    sdk: openai.OpenAI, gateway_url: str
) -> None:
    names = {model.id for model in sdk.models.list()}
    assert names == {"text_embedding", "text_embedding_int8"}
    assert sdk.models.retrieve("text_embedding_int8").id == "text_embedding_int8"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("tabular_classifier")
    _, scoped = create_key(gateway_url, name="int8 only", models=["text_embedding_int8"])
    with client_for(gateway_url, scoped) as limited:
        assert [m.id for m in limited.models.list()] == ["text_embedding_int8"]


def test_errors_are_what_the_sdk_expects(sdk: openai.OpenAI, gateway_url: str) -> None:
    with (
        client_for(gateway_url, "not-a-key") as stranger,
        pytest.raises(openai.AuthenticationError) as unauthenticated,
    ):
        stranger.embeddings.create(model=MODEL, input="x")
    assert unauthenticated.value.status_code == 401
    assert isinstance(unauthenticated.value.body, dict)
    assert unauthenticated.value.body["code"] == "invalid_api_key"
    _, other = create_key(gateway_url, name="tabular only", models=["tabular_classifier"])
    with (
        client_for(gateway_url, other) as outsider,
        pytest.raises(openai.PermissionDeniedError) as forbidden,
    ):
        outsider.embeddings.create(model=MODEL, input="x")
    assert "may not use model 'text_embedding'" in forbidden.value.message
    with pytest.raises(openai.NotFoundError) as unknown:
        sdk.embeddings.create(model="no-such-model", input="x")
    assert unknown.value.body["code"] == "model_not_found"  # type: ignore[index]
    for bad, param in (
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": "x", "dimensions": 64}, None),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.embeddings.create(model=MODEL, **bad)
        if param:
            assert refused.value.body["param"] == param  # type: ignore[index]
    too_long = " ".join(["word"] * 400)
    with pytest.raises(openai.BadRequestError) as long_input:
        sdk.embeddings.create(model=MODEL, input=["short", too_long])
    assert "input 1 is 402 tokens long" in long_input.value.message
    cut = sdk.embeddings.create(model=MODEL, input=[too_long], extra_body={"truncate": True})
    assert cut.usage.prompt_tokens == 256
    _, slow = create_key(
        gateway_url, name="slow", models=[MODEL], rate_limit_per_second=0.01, burst=1
    )
    with client_for(gateway_url, slow) as limited:
        limited.embeddings.create(model=MODEL, input="x")
        with pytest.raises(openai.RateLimitError) as limited_error:
            limited.embeddings.create(model=MODEL, input="x")
    assert int(limited_error.value.response.headers["retry-after"]) >= 1


def test_a_batch_computes_only_the_inputs_never_seen_and_in_order(
    gateway_url: str, direct: httpclient.InferenceServerClient
) -> None:
    salt = uuid.uuid4().hex
    a, b, c = (f"{salt} {text}" for text in TEXTS[:3])
    start = rows_computed(direct)
    expected = dict(zip((a, b, c), triton_vectors(direct, [a, b, c]), strict=True))
    before = start + 3
    settled(direct, before)  # direct Triton's own rows, counted apart
    first = post(gateway_url, [a, b])
    assert first.headers["x-cache"] == "miss" and first.headers["x-cache-inputs"] == "0/2"
    assert rows_computed(direct) == before + 2
    second = post(gateway_url, [b, c, a, c])
    assert second.headers["x-cache-inputs"] == "2/4"  # b and a cached; c computed once, twice used
    settled(direct, before + 3)
    data = second.json()["data"]
    assert [d["index"] for d in data] == [0, 1, 2, 3]
    vectors = np.array([d["embedding"] for d in data])
    assert cosines(vectors, np.array([expected[t] for t in (b, c, a, c)])).min() >= 0.99999
    third = post(gateway_url, [c, a])
    assert third.headers["x-cache"] == "hit"
    settled(direct, before + 3)


def post(gateway_url: str, texts: list[str]) -> httpx.Response:
    response = httpx.post(
        f"{gateway_url}/v1/embeddings",
        json={"model": MODEL, "input": texts, "encoding_format": "float"},
        headers=auth_headers(),
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return response


POOL = [f"{word} {n}" for n in range(12) for word in ("alpha", "beta")]


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    batches=st.lists(
        st.lists(st.sampled_from(POOL), min_size=1, max_size=10), min_size=1, max_size=4
    )
)
def test_property_every_vector_is_its_own_inputs_and_triton_sees_only_new_inputs(
    gateway_url: str, direct: httpclient.InferenceServerClient, batches: list[list[str]]
) -> None:
    salt = uuid.uuid4().hex  # a cache of this example's own
    distinct = sorted({f"{salt} {text}" for batch in batches for text in batch})
    start = rows_computed(direct)
    reference = dict(zip(distinct, triton_vectors(direct, distinct), strict=True))
    settled(direct, start + len(distinct))  # direct Triton's own rows, counted apart
    seen: set[str] = set()
    for batch in batches:
        texts = [f"{salt} {text}" for text in batch]
        before = rows_computed(direct)
        data = post(gateway_url, texts).json()["data"]
        new = set(texts) - seen
        settled(direct, before + len(new))
        seen |= new
        assert [d["index"] for d in data] == list(range(len(texts)))
        vectors = np.array([d["embedding"] for d in data])
        assert cosines(vectors, np.array([reference[t] for t in texts])).min() >= 0.99999
