"""The per-input cache of embeddings: every vector is its own input's, in request order;
Triton computes each input never seen before exactly once, batched; usage and limits come
from the model's own tokenizer (Triton and the cache's Redis tier faked at their boundaries)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors

import auth
from gateway.cache import Directive, Outcome
from gateway.errors import BadRequest, NotFound
from gateway.pipeline.dataplane import Answer
from gateway.pipeline.embeddings import EmbeddingsRequest
from gateway.protocol.datatypes import decode_bytes_elements
from gateway.protocol.types import InferRequest, InferResult, Tensor
from tests.support.pipeline import MODEL, Harness, harness

WORDS = ["[UNK]", "[CLS]", "[SEP]", "red", "green", "blue", "apple", "sky"]
KEY = auth.KeyRecord(id="k1", name="team", hash="h", models=("*",), created_at=0.0)


def vector_of(text: bytes) -> list[float]:
    """The fake model's embedding of a text: four numbers from its hash, unit length."""
    raw = np.frombuffer(hashlib.sha256(text).digest()[:16], np.uint32).astype(np.float32)
    return list(raw / np.linalg.norm(raw))


def embed(request: InferRequest) -> InferResult:
    if request.inputs[0].name == "text":
        texts = decode_bytes_elements(request.inputs[0].data)
    else:  # token ids: the text they stand for in this vocabulary
        ids = np.frombuffer(request.inputs[0].data, np.int64).reshape(request.inputs[0].shape)
        texts = [" ".join(WORDS[i] for i in row if i > 2).encode() for row in ids]
    vectors = np.asarray([vector_of(text) for text in texts], np.float32)
    output = Tensor("embedding", "FP32", vectors.shape, vectors.tobytes())
    return InferResult(request.model, request.version or "1", (output,))


def exposed_config(tmp_path: Path, **extra: str) -> dict[str, Any]:
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)]
    )
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    parameters = {
        "openai_text_input": "text",
        "openai_embedding_output": "embedding",
        "openai_tokenizer": "tokenizer.json",
        "openai_max_input_tokens": "6",
        "openai_tokens_model": f"{MODEL}:1",
        **extra,
    }
    return {
        "name": MODEL,
        "max_batch_size": 4,
        "parameters": {k: {"string_value": v} for k, v in parameters.items()},
    }


def run(tmp_path: Path, scenario: Callable[[Harness], Awaitable[None]], **extra: str) -> None:
    async def main() -> None:
        h = await harness(tmp_path, answer=embed, config=exposed_config(tmp_path, **extra))
        await scenario(h)

    asyncio.run(main())


async def ask(h: Harness, *inputs: str | tuple[int, ...], **options: Any) -> Answer:
    request = EmbeddingsRequest(MODEL, inputs, **options)
    answer = await h.embeddings.answer(request, h.embeddings.model(MODEL), KEY)
    await asyncio.sleep(0)  # the cache's background stores
    return answer


def vectors(answer: Answer) -> list[list[float]]:
    data = orjson.loads(answer.response.body)["data"]
    assert [d["index"] for d in data] == list(range(len(data)))
    return [d["embedding"] for d in data]


def rows_sent(h: Harness) -> int:
    return sum(call.inputs[0].shape[0] for call in h.triton.calls)


def test_each_vector_is_its_own_input_s_and_only_new_inputs_reach_triton(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        first = await ask(h, "red apple", "blue sky")
        assert (first.outcome, first.cached_parts, rows_sent(h)) == (Outcome.MISS, (0, 2), 2)
        again = await ask(h, "blue sky", "green", "red apple", "green")
        assert again.cached_parts == (2, 4) and rows_sent(h) == 3  # "green" once
        expected = [vector_of(t.encode()) for t in ("blue sky", "green", "red apple", "green")]
        np.testing.assert_allclose(vectors(again), expected, rtol=1e-6)
        assert len(h.triton.calls) == 2  # one batch per request
        assert (await ask(h, "green", "blue sky")).outcome is Outcome.HIT

    run(tmp_path, scenario)


def test_usage_counts_the_model_s_own_tokens_and_long_inputs_are_refused(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        answer = await ask(h, "red apple", "sky")  # [CLS] red apple [SEP], [CLS] sky [SEP]
        assert orjson.loads(answer.response.body)["usage"] == {
            "prompt_tokens": 7,
            "total_tokens": 7,
        }
        long = "red green blue apple sky red"  # 8 tokens with [CLS] and [SEP]; the model: 6
        with pytest.raises(BadRequest, match="input 1 is 8 tokens long"):
            await ask(h, "sky", long)
        cut = await ask(h, long, truncate=True)
        assert orjson.loads(cut.response.body)["usage"]["prompt_tokens"] == 6
        np.testing.assert_allclose(vectors(cut)[0], vector_of(b"red green blue apple"), rtol=1e-6)

    run(tmp_path, scenario)


def test_token_ids_go_to_the_tokens_model_and_base64_carries_the_same_floats(
    tmp_path: Path,
) -> None:
    async def scenario(h: Harness) -> None:
        tokens = await ask(h, (1, 3, 6, 2), (1, 7, 2))  # "red apple", "sky"
        expected = [vector_of(b"red apple"), vector_of(b"sky")]
        np.testing.assert_allclose(vectors(tokens), expected, rtol=1e-6)
        assert h.triton.calls[0].inputs[0].name == "input_ids"
        encoded = await ask(h, "red apple", encoding_format="base64")
        (text,) = vectors(encoded)
        floats = np.frombuffer(base64.b64decode(text), "<f4")  # type: ignore[arg-type]
        np.testing.assert_allclose(floats, expected[0], rtol=1e-6)

    run(tmp_path, scenario)


def test_dimensions_only_where_the_model_declares_truncation(tmp_path: Path) -> None:
    async def refused(h: Harness) -> None:
        with pytest.raises(BadRequest, match="does not support 'dimensions'"):
            await ask(h, "sky", dimensions=2)

    async def truncated(h: Harness) -> None:
        (vector,) = vectors(await ask(h, "sky", dimensions=2))
        full = np.asarray(vector_of(b"sky")[:2])
        np.testing.assert_allclose(vector, full / np.linalg.norm(full), rtol=1e-6)

    run(tmp_path, refused)
    run(tmp_path, truncated, openai_dimensions="truncate")


def test_no_store_bypasses_the_cache_and_unexposed_models_are_not_found(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        exposed = h.embeddings.model(MODEL)
        request = EmbeddingsRequest(MODEL, ("sky",))
        for _ in range(2):
            answer = await h.embeddings.answer(request, exposed, KEY, Directive.NONE)
            assert answer.outcome is Outcome.BYPASS
        assert rows_sent(h) == 2 and h.redis.values == {}
        with pytest.raises(NotFound):
            h.embeddings.model("other")

    run(tmp_path, scenario)
