"""Token encodings of training texts, persisted between runs of `costmesh train-verifier`.

The attention head trains on MiniLM's token vectors of ~100,000 questions; computing them
is most of a run's time on a CPU, so they are kept in one `.npz` (float16: the head reads
them as float32) keyed by the text, and only texts not in it are encoded.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from .encoder import Encoded, encode_full


class TokenCache:
    def __init__(self, path: Path | None):
        self.path = path
        self.index: dict[str, int] = {}
        self._tokens: list[np.ndarray] = []
        self._vectors: list[np.ndarray] = []
        if path and path.exists():
            with np.load(path, allow_pickle=False) as data:
                texts, tokens, offsets, vectors = data["texts"], data["tokens"], data["offsets"], data["vectors"]
                for i, text in enumerate(texts.tolist()):
                    self.index[text] = i
                    self._tokens.append(tokens[offsets[i]:offsets[i + 1]])
                    self._vectors.append(vectors[i])

    def __contains__(self, text: str) -> bool:
        return text in self.index

    def get(self, text: str) -> Encoded:
        i = self.index[text]
        return Encoded(self._vectors[i].astype(np.float32), self._tokens[i].astype(np.float32))

    def add(self, text: str, encoded: Encoded) -> None:
        if text not in self.index:
            self.index[text] = len(self._vectors)
            self._tokens.append(encoded.tokens.astype(np.float16))
            self._vectors.append(encoded.vector.astype(np.float16))

    def fill(self, model, texts: list[str], chunk: int = 1024, save_every: int = 16) -> None:
        """Encode the texts not cached yet (and save now and then: a long run can be resumed)."""
        todo = [t for t in dict.fromkeys(texts) if t not in self.index]
        started = time.perf_counter()
        for number, start in enumerate(range(0, len(todo), chunk)):
            part = todo[start:start + chunk]
            for text, encoded in zip(part, encode_full(model, part)):
                self.add(text, encoded)
            done = start + len(part)
            print(f"\rtoken vectors: {done}/{len(todo)} texts ({done / (time.perf_counter() - started):.0f}/s)",
                  end="", file=sys.stderr, flush=True)
            if number % save_every == save_every - 1:
                self.save()
        if todo:
            self.save()
            print(file=sys.stderr)

    def save(self) -> None:
        if not self.path or not self._vectors:
            return
        texts = sorted(self.index, key=self.index.get)
        offsets = np.cumsum([0] + [len(t) for t in self._tokens])
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, texts=np.asarray(texts), tokens=np.concatenate(self._tokens).astype(np.float16),
                 offsets=offsets, vectors=np.stack(self._vectors).astype(np.float16))
        tmp.replace(self.path)
