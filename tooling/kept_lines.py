"""The JSON lines the mesh keeps for retraining (the cache's shadow pairs, the router's judged rows),
read for `costmesh train-verifier --from-records` and `costmesh train-router --from-records`.

A source is a Redis URL (every list whose key matches the pattern is read, newest line first as the
mesh pushes them) or a JSON-lines file of such lines (.gz or not), e.g. one exported with
`redis-cli LRANGE`.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

from costmesh.errors import ConfigError

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def records_source(source: str) -> str:
    """`--from-records`'s value: a Redis URL or a file as given, or "$REDIS_URL" (the flag alone) read
    from the environment."""
    if source != "$REDIS_URL":
        return source
    url = os.environ.get("REDIS_URL", "")
    if not url:
        raise ConfigError("--from-records: give a Redis URL or a file, or set REDIS_URL")
    return url


def kept_lines(source: str, pattern: str, what: str) -> list[str]:
    """The lines of `source`; `what` names them in errors ("the shadow pairs")."""
    return _redis_lines(source, pattern, what) if source.startswith(REDIS_SCHEMES) else _file_lines(Path(source))


def _file_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise ConfigError(f"--from-records: {path} is neither a Redis URL nor a file")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [line for line in handle if line.strip()]


def _redis_lines(url: str, pattern: str, what: str) -> list[str]:
    from redis import Redis
    from redis.exceptions import RedisError

    client = Redis.from_url(url)
    try:
        lines = []
        for key in client.scan_iter(match=pattern, count=500):
            lines += [raw.decode() if isinstance(raw, bytes) else raw for raw in client.lrange(key, 0, -1)]
        return lines
    except RedisError as exc:
        raise ConfigError(f"--from-records: cannot read {what} from {url}: {exc}") from None
    finally:
        client.close()
