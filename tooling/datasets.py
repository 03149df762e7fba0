"""Readers for the evaluation data formats (routing books, paraphrase pairs)."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from costmesh.errors import ConfigError


def data_dir() -> Path:
    """`$COSTMESH_DATA_DIR`, else `shared/data` beside the repository."""
    configured = os.environ.get("COSTMESH_DATA_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def read_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ConfigError(f"{path}:{line_no}: not JSON: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


@dataclass(frozen=True)
class BookRecord:
    prompt: str
    weak_score: float
    strong_score: float
    weak_response: str | None = None
    strong_response: str | None = None
    subject: str | None = None  # MMLU books carry the question's subject


def load_book(path: str | os.PathLike, limit: int | None = None) -> list[BookRecord]:
    records = []
    for row in read_jsonl(path):
        try:
            subject = row.get("subject")
            records.append(BookRecord(row["prompt"], float(row["weak_score"]), float(row["strong_score"]),
                                      row.get("weak_response"), row.get("strong_response"),
                                      str(subject) if subject is not None else None))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: not a routing book record ({exc})") from None
        if limit and len(records) >= limit:
            break
    return records


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    duplicate: bool


def load_pairs(path: str | os.PathLike, limit: int | None = None) -> list[Pair]:
    pairs = []
    for row in read_jsonl(path):
        try:
            pairs.append(Pair(row["a"], row["b"], bool(row["duplicate"])))
        except KeyError as exc:
            raise ConfigError(f"{path}: not a pairs record (missing {exc})") from None
        if limit and len(pairs) >= limit:
            break
    return pairs
