"""The labelled pairs of shadow checks (issue 22), as training rows for `costmesh train-verifier
--from-records`.

The cache keeps them, for tenants that consented (`keep_shadow_pairs`), in Redis lists
`<prefix>:shadow-pairs:<tenant hash>` of JSON lines {"query", "cached_query", "same", ...}: the
question asked, the question of the entry that was served for it, and whether the shadow check's
judge found the two answers the same. A source is a Redis URL (every such list in it is read) or
a JSON-lines file of such lines (.gz or not), e.g. one exported with `redis-cli LRANGE`.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from costmesh.errors import ConfigError

PAIRS_PATTERN = "*:shadow-pairs:*"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def load_shadow_pairs(source: str) -> list[dict]:
    """Training rows {"a": question, "b": cached question, "duplicate": same}, each pair once (its
    latest verdict), in a stable order."""
    lines = _redis_lines(source) if source.startswith(REDIS_SCHEMES) else _file_lines(Path(source))
    rows: dict[tuple[str, str], dict] = {}
    for line in lines:
        try:
            pair = json.loads(line)
            a, b, same = str(pair["query"]), str(pair["cached_query"]), bool(pair["same"])
        except (ValueError, KeyError, TypeError):
            continue  # not a pair line
        if a.strip() and b.strip() and a != b:
            rows.setdefault((a, b), {"a": a, "b": b, "duplicate": same})  # lists are newest first
    return [rows[key] for key in sorted(rows)]


def _file_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise ConfigError(f"--from-records: {path} is neither a Redis URL nor a file")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [line for line in handle if line.strip()]


def _redis_lines(url: str) -> list[str]:
    from redis import Redis
    from redis.exceptions import RedisError

    client = Redis.from_url(url)
    try:
        lines = []
        for key in client.scan_iter(match=PAIRS_PATTERN, count=500):
            lines += [raw.decode() if isinstance(raw, bytes) else raw for raw in client.lrange(key, 0, -1)]
        return lines
    except RedisError as exc:
        raise ConfigError(f"--from-records: cannot read the shadow pairs from {url}: {exc}") from None
    finally:
        client.close()
