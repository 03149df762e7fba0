"""The local models on ONNX Runtime give torch's numbers, are exported once and reused."""

from __future__ import annotations

import os

import numpy as np
import pytest

from costmesh.config import Env
from costmesh.embeddings import Embedder, load_sentence_model
from costmesh.errors import ConfigError
from costmesh.model_files import FP32_MODEL_ID, INT8_MODEL_ID, default_model_path, model_backend
from costmesh.onnx_models import QUANT
from costmesh.verification.artifact import DEFAULT_ARTIFACT, VerifierArtifact
from costmesh.verification.cross_encoder import CrossEncoder, OnnxCrossEncoder, load_cross_encoder

TEXTS = [
    "How do I cancel my subscription?",
    "How do I not cancel my subscription?",
    "What is the capital of France?",
    "Explain the difference between a B-tree and a binary search tree, with an example of each, "
    "and say which one a database index uses and why.",
    "ok",
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx")
    old = os.environ.get("COSTMESH_ONNX_CACHE")
    os.environ["COSTMESH_ONNX_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("COSTMESH_ONNX_CACHE")
    else:
        os.environ["COSTMESH_ONNX_CACHE"] = old


@pytest.fixture(scope="module")
def embedders(cache_dir):
    return (Embedder(model_id=FP32_MODEL_ID, backend="onnx", threads=1, warmup=False),
            Embedder(model_id=FP32_MODEL_ID, backend="torch", threads=1, warmup=False))


def test_sentence_vectors_match_torch(embedders):
    onnx, torch = embedders
    a, b = np.array(onnx.encode(TEXTS)), np.array(torch.encode(TEXTS))
    assert a.shape == b.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert (a * b).sum(1).min() > 0.99999


def test_token_embeddings_match_torch(embedders):
    onnx, torch = embedders
    for x, y in zip(onnx.encode_full(TEXTS), torch.encode_full(TEXTS)):
        assert x.tokens.shape == y.tokens.shape
        assert np.abs(x.tokens - y.tokens).max() < 1e-4
        assert float(x.vector @ y.vector) > 0.99999


def test_one_text_alone_gives_its_vector_in_a_batch(embedders):
    onnx, _ = embedders
    together = np.array(onnx.encode(TEXTS))
    for i, text in enumerate(TEXTS):
        assert float(np.array(onnx.encode([text]))[0] @ together[i]) > 0.99999


def test_exported_once_then_read_from_the_cache(cache_dir, embedders, monkeypatch):
    files = sorted(f for f in cache_dir.glob("sentence-*.onnx") if QUANT not in f.name)
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the cache holds the model")

    monkeypatch.setattr("torch.onnx.export", no_export)
    model = load_sentence_model(default_model_path(), "onnx", 1)
    assert model.encode(["again"]).shape == (1, 384)
    assert files[0].stat().st_mtime_ns == stamp
    assert not list(cache_dir.glob("*.tmp"))


def test_cross_encoder_logits_match_torch(cache_dir):
    adapter = VerifierArtifact.load(DEFAULT_ARTIFACT).cross_encoder
    assert adapter is not None
    pairs = [(TEXTS[0], TEXTS[1]), (TEXTS[2], "Which city is the capital of France?"), (TEXTS[3], TEXTS[4])]
    onnx = OnnxCrossEncoder(adapter, threads=1)
    assert np.abs(onnx.logits(pairs) - CrossEncoder(adapter).logits(pairs)).max() < 1e-4
    assert list(onnx.logits([])) == []
    assert len(list(cache_dir.glob("cross-*.onnx"))) == 1
    assert isinstance(load_cross_encoder(adapter, "onnx"), OnnxCrossEncoder)


def test_unknown_backend_is_a_config_error():
    with pytest.raises(ConfigError, match="COSTMESH_MODEL_BACKEND"):
        model_backend(Env({"COSTMESH_MODEL_BACKEND": "tensorflow"}))
    assert model_backend(Env({})) == "onnx"
    with pytest.raises(ConfigError, match="COSTMESH_MODEL_BACKEND"):
        load_sentence_model("/nonexistent", "tpu")


def test_int8_embedder_is_quantised_close_to_fp32_and_cached(cache_dir, embedders):
    fp32, _ = embedders
    int8 = Embedder(model_id=INT8_MODEL_ID, backend="onnx", threads=1, warmup=False)
    a, b = np.array(int8.encode(TEXTS)), np.array(fp32.encode(TEXTS))
    assert a.shape == b.shape
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    cosines = (a * b).sum(1)
    assert cosines.min() > 0.95 and cosines.mean() > 0.98  # per-channel int8: 0.993 on MMLU prompts, "ok" 0.97
    assert np.abs(a - b).max() > 1e-3  # a different model, not the fp32 one under another name
    (full,) = int8.encode_full(TEXTS[:1])
    assert full.tokens.shape[1] == 384 and float(full.vector @ a[0]) > 0.99999
    exported = [f for f in cache_dir.glob("sentence-*.onnx") if QUANT not in f.name]
    quantised = list(cache_dir.glob(f"sentence-*-{QUANT}.onnx"))
    assert len(exported) == 1 and len(quantised) == 1
    assert quantised[0].stat().st_size < exported[0].stat().st_size / 2  # int8 weights
    stamp = quantised[0].stat().st_mtime_ns
    again = load_sentence_model(default_model_path(), "onnx", 1, INT8_MODEL_ID)
    assert float(again.encode([TEXTS[0]], normalize_embeddings=True)[0] @ a[0]) > 0.99999
    assert quantised[0].stat().st_mtime_ns == stamp


def test_int8_embedder_needs_onnx_runtime():
    with pytest.raises(ConfigError, match="onnx backend only"):
        load_sentence_model(default_model_path(), "torch", 1, INT8_MODEL_ID)


def test_int8_cross_encoder_is_close_to_fp32_one_pair_per_pass_and_cached(cache_dir):
    adapter = VerifierArtifact.load(DEFAULT_ARTIFACT).cross_encoder
    pairs = [(TEXTS[0], TEXTS[1]), (TEXTS[2], "Which city is the capital of France?"), (TEXTS[3], TEXTS[4])]
    fp32, int8 = OnnxCrossEncoder(adapter, threads=1), load_cross_encoder(adapter, "onnx", 1, int8=True)
    a, b = fp32.logits(pairs), int8.logits(pairs)
    assert np.abs(a - b).max() < 1.0 and np.abs(a - b).max() > 1e-4  # quantised, not the fp32 model renamed
    assert np.sign(a).tolist() == np.sign(b).tolist()
    alone = np.array([int8.logits([pair])[0] for pair in pairs])
    assert np.abs(alone - b).max() < 1e-6  # one pair per pass: a pair's logit never depends on its batch-mates
    assert len(list(cache_dir.glob(f"cross-*-{QUANT}.onnx"))) == 1
    with pytest.raises(ConfigError, match="onnx backend only"):
        load_cross_encoder(adapter, "torch", 1, int8=True)


def test_the_packaged_verifier_runs_its_cross_encoder_int8_on_the_int8_embedder():
    artifact = VerifierArtifact.load(DEFAULT_ARTIFACT)
    assert artifact.embedding_model == INT8_MODEL_ID and artifact.cross_int8
    fp32 = VerifierArtifact.load(DEFAULT_ARTIFACT.with_name("verifier-v1-fp32.npz"))
    assert fp32.embedding_model == FP32_MODEL_ID and not fp32.cross_int8
