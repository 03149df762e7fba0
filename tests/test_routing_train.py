"""Training the learned router on small books: it beats the rules, calibrates an operating
point on held-out rows, and its artifact round-trips and reloads."""

from __future__ import annotations

import os

import numpy as np
import pytest

from costmesh.errors import ConfigError, InvalidRequest
from costmesh.routing.artifact import COMPONENTS, FORMAT_VERSION, load_artifact
from costmesh.routing.calibration import OperatingPoint
from costmesh.routing.hashing_encoder import HashingEncoder
from costmesh.routing.metrics import curve
from costmesh.routing.scorer import ArtifactSource, component_scores, prompt_scores, raw_prompt_scores
from costmesh.tooling.datasets import data_dir, load_book
from costmesh.tooling.routing.evaluation import evaluate, rules_scores
from costmesh.tooling.routing.train import Book, TrainConfig, is_held_out, train

ENCODER = HashingEncoder()


@pytest.fixture(scope="module")
def books():
    mmlu = load_book(data_dir() / "mmlu_routing_dev.jsonl.gz", limit=600)
    gsm8k = load_book(data_dir() / "gsm8k_routing_dev.jsonl.gz")
    return [Book("mmlu-small", mmlu), Book("gsm8k", gsm8k)]


@pytest.fixture(scope="module")
def trained(books):
    return train(books, config=TrainConfig(k=20), embedding_model=ENCODER.model_id, encode=ENCODER.encode,
                 use_cache=False)


def _embed(records):
    return np.asarray(ENCODER.encode([r.prompt for r in records]), dtype=np.float32)


def test_training_on_a_small_book_and_scoring_it_beats_the_rules(books, trained):
    artifact, _ = trained
    records = books[0].records
    weak = [r.weak_score for r in records]
    strong = [r.strong_score for r in records]
    learned = curve(prompt_scores(artifact, [r.prompt for r in records], _embed(records)), weak, strong)
    rules = curve(rules_scores([r.prompt for r in records]), weak, strong)
    assert learned.apgr() > rules.apgr() + 0.05
    assert learned.premium_share_at() < rules.premium_share_at()


def test_the_answer_gate_beats_random_and_rules_on_held_out_math(books, trained):
    artifact, report = trained
    held = [r for r in books[1].records if is_held_out(r.prompt, 0.3)]
    result = evaluate(held, strategy="learned", cascade=True, artifact=artifact, embeddings=_embed(held))
    assert result["rows"] == len(held) > 150
    assert result["apgr"] > result["baselines"]["random"]["apgr"] + 0.15
    assert result["apgr"] > result["baselines"]["rules"]["apgr"] + 0.15
    assert result["premium_share_at_95"] < result["baselines"]["random"]["premium_share_at_95"]
    assert 0 < result["cost_ratio"] < result["baselines"]["random"]["cost_ratio"]
    assert report["held_out"]["gsm8k"]["cascade"]["apgr"] == pytest.approx(result["apgr"])


def test_operating_point_is_calibrated_and_reported(trained):
    artifact, report = trained
    calibration = artifact.calibration
    assert calibration["operating_point"] == {"quality_target": 0.95, "premium_budget": None, "confidence": 0.9}
    assert 0.0 < artifact.threshold < 1.0
    assert artifact.bands == sorted(artifact.bands) and artifact.bands[1] == artifact.threshold
    expected = calibration["expected"]
    assert expected["rows"] > 0 and 0.0 <= expected["premium_share"] <= 1.0
    assert expected["quality_fraction"] > 0.85  # measured on rows the threshold was not chosen on
    assert report["operating_point"] is calibration


def test_premium_budget_caps_the_strong_share(books):
    artifact, _ = train(books[:1], config=TrainConfig(k=0, point=OperatingPoint(None, premium_budget=0.2)),
                        embedding_model=ENCODER.model_id, encode=ENCODER.encode, use_cache=False)
    records = [r for r in books[0].records if is_held_out(r.prompt, 0.3)]
    share = float((prompt_scores(artifact, [r.prompt for r in records], _embed(records)) >= artifact.threshold).mean())
    assert share <= 0.3  # 0.2 on the calibration rows; the other held-out rows land near it
    assert artifact.gate_model is None  # MMLU has no recorded answers
    assert artifact.neighbours is None and artifact.meta["ensemble"]["components"] == ["prompt", "outcomes", "text"]


def test_the_score_is_the_mean_of_the_standardised_components(books, trained):
    artifact, _ = trained
    ensemble = artifact.meta["ensemble"]
    assert ensemble["components"] == list(COMPONENTS)
    assert artifact.outcome_models is not None and artifact.text_model is not None and artifact.neighbours is not None
    records = [r for r in books[0].records if is_held_out(r.prompt, 0.3)]
    prompts, emb = [r.prompt for r in records], _embed(records)
    columns = component_scores(artifact, prompts, emb)
    assert columns.shape == (len(records), len(COMPONENTS))
    z = (columns - np.array(ensemble["mean"])) / np.array(ensemble["std"])
    assert np.allclose(raw_prompt_scores(artifact, prompts, emb), z.mean(axis=1))
    # Standardised on held-out calibration rows: on held-out rows each component is near mean 0, spread 1.
    assert np.all(np.abs(z.mean(axis=0)) < 0.5) and np.all((z.std(axis=0) > 0.5) & (z.std(axis=0) < 2.0))
    # Every component ranks the strong model's wins above its losses on rows it was trained on.
    trained_rows = [r for r in books[0].records if not is_held_out(r.prompt, 0.3)]
    cols = component_scores(artifact, [r.prompt for r in trained_rows], _embed(trained_rows))
    gain = np.array([r.strong_score - r.weak_score for r in trained_rows])
    for j, name in enumerate(COMPONENTS):
        assert np.corrcoef(cols[:, j], gain)[0, 1] > 0.1, name


def test_an_artifact_missing_a_components_arrays_is_refused(tmp_path, trained):
    artifact, _ = trained
    path = artifact.save(tmp_path / "router.npz")
    data = dict(np.load(path))
    for prefix, message in (("text.", "text"), ("knn.", "knn"), ("weak.", "weak")):
        kept = {k: v for k, v in data.items() if not k.startswith(prefix)}
        np.savez(tmp_path / "bad.npz", **kept)
        with pytest.raises(ConfigError, match=message):
            load_artifact(tmp_path / "bad.npz")


def test_training_rows_are_recorded_and_never_held_out(books, trained):
    artifact, _ = trained
    prompts = [r.prompt for r in books[0].records]
    trained_on = artifact.was_trained_on(prompts)
    held = np.array([is_held_out(p, 0.3) for p in prompts])
    assert trained_on.any() and held.any()
    assert not (trained_on & held).any()
    assert (trained_on | held).all()


def test_artifact_round_trips(tmp_path, books, trained):
    artifact, _ = trained
    path = artifact.save(tmp_path / "router.npz")
    loaded = load_artifact(path)
    assert loaded.meta["format_version"] == FORMAT_VERSION
    assert loaded.embedding_model == ENCODER.model_id and loaded.embedding_dims == ENCODER.dims
    assert loaded.threshold == artifact.threshold and loaded.gate_threshold == artifact.gate_threshold
    assert loaded.meta["training"]["books"][0]["name"] == "mmlu-small"
    records = books[1].records[:50]
    a = prompt_scores(artifact, [r.prompt for r in records], _embed(records))
    b = prompt_scores(loaded, [r.prompt for r in records], _embed(records))
    assert np.allclose(a, b, atol=1e-6)
    assert np.array_equal(np.sort(loaded.trained_hashes), np.sort(artifact.trained_hashes))
    assert os.path.getsize(path) < 5 * 1024 * 1024


def test_artifact_of_another_version_or_format_is_refused(tmp_path, trained):
    artifact, _ = trained
    path = artifact.save(tmp_path / "router.npz")
    data = dict(np.load(path))
    import json

    meta = json.loads(data["meta"].tobytes())
    for key, value, message in (("format_version", 99, "format version 99"), ("format", "other", "format 'other'")):
        bad = {**meta, key: value}
        np.savez(tmp_path / "bad.npz", **{**data, "meta": np.frombuffer(json.dumps(bad).encode(), dtype=np.uint8)})
        with pytest.raises(ConfigError, match=message):
            load_artifact(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="not a readable"):
        load_artifact(tmp_path / "junk.npz")
    with pytest.raises(ConfigError, match="no such file"):
        load_artifact(tmp_path / "missing.npz")


def test_source_reloads_a_changed_file_and_keeps_the_old_one_on_a_bad_file(tmp_path, trained):
    artifact, _ = trained
    path = artifact.save(tmp_path / "router.npz")
    now = [0.0]
    source = ArtifactSource(path, check_every_s=1.0, clock=lambda: now[0])
    first = source.current()
    artifact.meta["calibration"]["threshold"] = 0.4242
    artifact.save(path)
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    assert source.current() is first  # not checked again within check_every_s
    now[0] = 5.0
    assert source.current().threshold == pytest.approx(0.4242) and source.loads == 2
    path.write_bytes(b"broken")
    now[0] = 10.0
    assert source.current().threshold == pytest.approx(0.4242)  # the broken file is not served
    assert source.loads == 2


def test_bad_training_input_is_refused(books):
    with pytest.raises(InvalidRequest, match="holdout"):
        train(books, config=TrainConfig(holdout=1.5), encode=ENCODER.encode, use_cache=False)
    with pytest.raises(InvalidRequest, match="too few rows"):
        train([Book("tiny", books[0].records[:5])], encode=ENCODER.encode, embedding_model=ENCODER.model_id,
              use_cache=False)
