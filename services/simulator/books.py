"""Routing books: recorded prompts with the weak and strong models' responses, for replay."""

from __future__ import annotations

import functools
import gzip
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from costmesh.errors import ConfigError


@dataclass(frozen=True)
class BookEntry:
    prompt: str
    source: str
    weak_response: str | None = None
    strong_response: str | None = None
    weak_score: float | None = None
    strong_score: float | None = None

    def response(self, side: str) -> str | None:
        """The recorded response of `side` ("weak" or "strong"), if the book has one."""
        return self.weak_response if side == "weak" else self.strong_response if side == "strong" else None


def normalise(text: str) -> str:
    """The matching key of a prompt: whitespace collapsed, ends trimmed."""
    return " ".join(text.split())


class Books:
    """Every loaded book, looked up by normalised prompt (first book wins on duplicates)."""

    def __init__(self, entries: Mapping[str, BookEntry]):
        self._entries = entries

    @classmethod
    def load(cls, paths: Iterable[Path]) -> Books:
        merged: dict[str, BookEntry] = {}
        for path in paths:
            try:
                stat = path.stat()
            except OSError as exc:
                raise ConfigError(f"simulator book {path}: {exc}") from exc
            for key, entry in _load_book(str(path.resolve()), stat.st_mtime_ns, stat.st_size).items():
                merged.setdefault(key, entry)
        return cls(merged)

    def lookup(self, prompt: str) -> BookEntry | None:
        return self._entries.get(normalise(prompt))

    def __len__(self) -> int:
        return len(self._entries)


@functools.lru_cache(maxsize=32)
def _load_book(path: str, _mtime_ns: int, _size: int) -> Mapping[str, BookEntry]:
    """One book, parsed once per process and version of the file."""
    entries: dict[str, BookEntry] = {}
    source = Path(path).name
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    prompt = row["prompt"]
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise ConfigError(f"simulator book {path}:{number}: not a book record ({exc})") from exc
                entries.setdefault(
                    normalise(prompt),
                    BookEntry(
                        prompt=prompt,
                        source=source,
                        weak_response=row.get("weak_response"),
                        strong_response=row.get("strong_response"),
                        weak_score=row.get("weak_score"),
                        strong_score=row.get("strong_score"),
                    ),
                )
    except (OSError, EOFError) as exc:
        raise ConfigError(f"simulator book {path}: {exc}") from exc
    return MappingProxyType(entries)
