"""The labelled pairs of shadow checks (issue 22), as training rows for `costmesh train-verifier
--from-records`.

The cache keeps them, for tenants that consented (`keep_shadow_pairs`), in Redis lists
`<prefix>:shadow-pairs:<tenant hash>` of JSON lines {"query", "cached_query", "same", ...}: the
question asked, the question of the entry that was served for it, and whether the shadow check's
judge found the two answers the same. A source is a Redis URL (every such list in it is read) or
a JSON-lines file of such lines (.gz or not), e.g. one exported with `redis-cli LRANGE`.
"""

from __future__ import annotations

import json

from costmesh.tooling.kept_lines import kept_lines

PAIRS_PATTERN = "*:shadow-pairs:*"


def load_shadow_pairs(source: str) -> list[dict]:
    """Training rows {"a": question, "b": cached question, "duplicate": same}, each pair once (its
    latest verdict), in a stable order."""
    lines = kept_lines(source, PAIRS_PATTERN, "the shadow pairs")
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
