"""The LoRA cross-encoder: the adapter merged at serving scores as the peft model did in training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from costmesh.errors import ConfigError
from costmesh.length_chunks import plan_chunks
from costmesh.model_files import default_model_path, load_sentence_transformer
from costmesh.verification.cross_encoder import (
    Adapter,
    CrossEncoder,
    export,
    peft_model,
    pooled_logits,
    train_cross_encoder,
)

PAIRS = [("How do I reset my password?", "How can I reset my password"),
         ("Cancel my subscription.", "Don't cancel my subscription."),
         ("What is the capital of France?", "What's the population of France?")]


def test_merged_adapter_scores_like_the_peft_model_it_came_from():
    base = load_sentence_transformer(default_model_path())
    torch.manual_seed(1)  # before peft_model: its lora_A are drawn from torch's generator, whatever ran before
    model = peft_model(base[0].auto_model, rank=4, alpha=8.0)
    with torch.no_grad():
        for name, module in model.named_modules():
            if hasattr(module, "lora_B") and "default" in module.lora_B:
                module.lora_B["default"].weight.normal_(0.0, 0.05)  # B starts at zero: make it matter
    head = torch.nn.Linear(384, 1)
    model.eval()
    with torch.no_grad():
        expected = pooled_logits(model, head, base.tokenizer, PAIRS, 64).numpy()
    adapter = export(model, head, rank=4, alpha=8.0, max_length=64)
    assert len(adapter.factors) == 6 * 6 and adapter.size == 6 * (4 * 768 * 4 + 2 * 4 * (384 + 1536)) + 385
    served = CrossEncoder(adapter).logits(PAIRS)
    assert served == pytest.approx(expected, abs=1e-4)

    plain = CrossEncoder(Adapter(4, 8.0, 64, {}, adapter.head_weight, adapter.head_bias)).logits(PAIRS)
    assert np.abs(plain - expected).max() > 1e-2, np.abs(plain - expected)  # the adapter changed the scores


def test_training_separates_a_duplicate_from_a_trap_and_round_trips(tmp_path):
    rows = [(*PAIRS[0], 1.0), (*PAIRS[1], 0.0)] * 8
    adapter = train_cross_encoder(rows, epochs=2.0, batch_size=4, lr=3e-3, max_length=32,
                                  checkpoint=tmp_path / "ce.npz", log=lambda line: None)
    same, trap = CrossEncoder(adapter).logits(PAIRS[:2])
    assert same > 0 > trap

    reloaded = Adapter.load(tmp_path / "ce.npz")  # the checkpoint holds the final adapter, float16
    assert reloaded.rank == 8 and set(reloaded.factors) == set(adapter.factors)
    assert CrossEncoder(reloaded).logits(PAIRS[:2]) == pytest.approx([same, trap], abs=0.05)

    # resuming starts from the adapter's weights: with a learning rate of ~0 they stay as they were
    resumed = train_cross_encoder(rows[:4], epochs=1.0, batch_size=4, lr=1e-12, start=reloaded, log=lambda line: None)
    assert resumed.max_length == 32
    assert CrossEncoder(resumed).logits(PAIRS[:2]) == pytest.approx([same, trap], abs=0.05)


def test_an_adapter_naming_a_layer_the_base_lacks_is_refused():
    bad = Adapter(2, 4.0, 32, {"encoder.layer.9.nothing": (np.ones((2, 384)), np.zeros((384, 2)))},
                  np.zeros(384, np.float32), 0.0)
    with pytest.raises(ConfigError, match="encoder.layer.9.nothing"):
        CrossEncoder(bad)


def test_reusing_a_cross_encoder_needs_a_file_that_has_one(tmp_path):
    np.savez(tmp_path / "empty.npz", x=np.zeros(1))
    with pytest.raises(ConfigError, match="no cross-encoder"):
        Adapter.load(tmp_path / "empty.npz")
    with pytest.raises(ConfigError, match="missing.npz"):
        Adapter.load(tmp_path / "missing.npz")


def test_pairs_of_spread_lengths_score_as_they_do_one_at_a_time():
    rng = np.random.default_rng(3)
    adapter = Adapter(2, 4.0, 64, {"encoder.layer.0.attention.self.query": (
        rng.normal(0, 0.1, (2, 384)).astype(np.float32), rng.normal(0, 0.1, (384, 2)).astype(np.float32))},
        rng.normal(0, 0.1, 384).astype(np.float32), 0.1)
    reader = CrossEncoder(adapter)
    pairs = PAIRS + [("Why?", "Why not?"), ("What are the best ways to learn a new programming language quickly if "
                                           "I already know Python and a little C?", "How do I learn Rust fast?")]
    lengths = [len(ids) for ids in reader.tokenizer([a for a, _ in pairs], [b for _, b in pairs])["input_ids"]]
    assert len(plan_chunks(lengths)) > 1  # these lengths do split
    together = reader.logits(pairs)
    alone = np.array([reader.logits([pair])[0] for pair in pairs])
    assert np.abs(together - alone).max() < 1e-4
    assert reader.logits([]).shape == (0,)
