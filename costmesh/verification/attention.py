"""A small cross-attention head over MiniLM's token vectors (decomposable-attention style).

The tree ensemble sees the pair through hand-made features; this head reads the two token
sequences themselves: each token of one question attends over the other's tokens, the token
and what it aligned with are compared by a shared layer, the comparisons are pooled (mean and
max) per side, and the two sides are combined symmetrically with the sentence vectors. It
runs on the token vectors the verifier already computes (no second transformer pass); its
weights are ~280k floats (128 dims), served with numpy. Training uses torch (already installed for the
embedding model).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

MAX_TOKENS = 48  # longer questions are read up to here (Quora questions: ~15 tokens)
NAMES = ("proj_w", "proj_b", "cmp_w", "cmp_b", "out1_w", "out1_b", "out2_w", "out2_b")


def _truncate(tokens: np.ndarray) -> np.ndarray:
    return np.asarray(tokens, dtype=np.float32)[:MAX_TOKENS]


@dataclass(frozen=True)
class AttentionHead:
    """Weights in torch's Linear layout (out, in)."""

    proj_w: np.ndarray
    proj_b: np.ndarray
    cmp_w: np.ndarray
    cmp_b: np.ndarray
    out1_w: np.ndarray
    out1_b: np.ndarray
    out2_w: np.ndarray
    out2_b: np.ndarray

    def _side(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        e = a @ b.T
        e = np.exp(e - e.max(axis=1, keepdims=True))
        aligned = (e / e.sum(axis=1, keepdims=True)) @ b
        g = np.maximum(np.concatenate([a, aligned, a * aligned, np.abs(a - aligned)], axis=1) @ self.cmp_w.T
                       + self.cmp_b, 0.0)
        return np.concatenate([g.mean(axis=0), g.max(axis=0)])

    def logit(self, a_tokens: np.ndarray, b_tokens: np.ndarray, u: np.ndarray, v: np.ndarray) -> float:
        a = _truncate(a_tokens) @ self.proj_w.T + self.proj_b
        b = _truncate(b_tokens) @ self.proj_w.T + self.proj_b
        va, vb = self._side(a, b), self._side(b, a)
        u, v = np.asarray(u, dtype=np.float32), np.asarray(v, dtype=np.float32)
        z = np.concatenate([va + vb, np.abs(va - vb), u * v, np.abs(u - v), [float(u @ v)]])
        hidden = np.maximum(self.out1_w @ z + self.out1_b, 0.0)
        return float((self.out2_w @ hidden + self.out2_b)[0])

    def to_arrays(self, prefix: str = "head_") -> dict[str, np.ndarray]:
        return {prefix + name: getattr(self, name).astype(np.float32) for name in NAMES}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "head_") -> "AttentionHead | None":
        if not any(key.startswith(prefix) for key in arrays):
            return None
        return cls(**{name: np.asarray(arrays[prefix + name], dtype=np.float32) for name in NAMES})


def train_head(
    rows: Sequence[tuple[str, str, float, float]],
    encoded: Callable[[str], object],
    *,
    epochs: int = 5,
    batch_size: int = 64,
    dims: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> AttentionHead:
    """Fit the head on (a, b, label, weight) rows; `encoded(text)` gives an `Encoded` (vector, tokens).

    AdamW with a one-cycle learning rate, each batch's pairs swapped at random (the head is
    symmetric in its output layer but not in its alignment sides)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    width = int(encoded(rows[0][0]).vector.shape[0])

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(width, dims)
            self.cmp = nn.Linear(4 * dims, dims)
            self.out1 = nn.Linear(4 * dims + 2 * width + 1, dims)
            self.out2 = nn.Linear(dims, 1)

        def side(self, a, ma, b, mb):
            e = (a @ b.transpose(1, 2)).masked_fill(~mb[:, None, :], -1e4)
            aligned = torch.softmax(e, -1) @ b
            g = torch.relu(self.cmp(torch.cat([a, aligned, a * aligned, (a - aligned).abs()], -1)))
            mean = (g * ma[..., None]).sum(1) / ma.sum(1, keepdim=True).clamp(min=1)
            return torch.cat([mean, g.masked_fill(~ma[..., None], -1e4).max(1).values], -1)

        def forward(self, a, ma, b, mb, u, v):
            a, b = self.proj(a), self.proj(b)
            va, vb = self.side(a, ma, b, mb), self.side(b, mb, a, ma)
            z = torch.cat([va + vb, (va - vb).abs(), u * v, (u - v).abs(), (u * v).sum(-1, keepdim=True)], -1)
            return self.out2(torch.relu(self.out1(z))).squeeze(-1)

    def padded(texts: list[str]):
        tokens = [_truncate(encoded(t).tokens) for t in texts]
        length = max(len(t) for t in tokens)
        x = np.zeros((len(texts), length, width), dtype=np.float32)
        mask = np.zeros((len(texts), length), dtype=bool)
        for i, t in enumerate(tokens):
            x[i, :len(t)] = t
            mask[i, :len(t)] = True
        vectors = np.stack([np.asarray(encoded(t).vector, dtype=np.float32) for t in texts])
        return torch.from_numpy(x), torch.from_numpy(mask), torch.from_numpy(vectors)

    net = Net()
    steps_per_epoch = max(1, len(rows) // batch_size)
    optimiser = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=2e-3, total_steps=epochs * steps_per_epoch)
    loss_fn = nn.BCEWithLogitsLoss(reduction="none")
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        started, total = time.perf_counter(), 0.0
        order = rng.permutation(len(rows))
        for step in range(steps_per_epoch):
            batch = [rows[i] for i in order[step * batch_size:(step + 1) * batch_size]]
            if rng.random() < 0.5:
                batch = [(b, a, y, w) for a, b, y, w in batch]
            a, ma, u = padded([r[0] for r in batch])
            b, mb, v = padded([r[1] for r in batch])
            y = torch.tensor([r[2] for r in batch], dtype=torch.float32)
            w = torch.tensor([r[3] for r in batch], dtype=torch.float32)
            loss = (loss_fn(net(a, ma, b, mb, u, v), y) * w).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach())
        if progress:
            print(f"attention head: epoch {epoch + 1}/{epochs} loss {total / steps_per_epoch:.4f} "
                  f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    weights = {name.replace(".weight", "_w").replace(".bias", "_b"): p.detach().numpy().copy()
               for name, p in net.named_parameters()}
    return AttentionHead(**{name: weights[name] for name in NAMES})
