"""The judged rows of the router's shadow checks (issue 22), as training rows for `costmesh
train-router --from-records`.

The gateway keeps them, for tenants that consented (`keep_shadow_rows` in
COSTMESH_ROUTER_TENANT_POLICIES), in Redis lists `<prefix>:routing-rows:<tenant digest>` of JSON
lines {"prompt", "tier", "as_good", "weak_response", "strong_response", ...}: the question, the
tier and answer the router served, the premium model's answer, and whether the judge found the
cheap answer as good. Each becomes a routing-book row: weak score 1 when as good, else 0; strong
score 1 (the premium answer is the reference). A source is a Redis URL (every such list in it is
read) or a JSON-lines file of such lines (.gz or not), e.g. one exported with `redis-cli LRANGE`.

Only cheap answers are checked, so these rows are prompts the router scored under its threshold:
they teach it where the cheap model falls short on the tenants' own traffic, and are trained on
only (never held out to calibrate or measure, where they would skew the operating point).
"""

from __future__ import annotations

import json

from costmesh.tooling.datasets import BookRecord
from costmesh.tooling.kept_lines import kept_lines

ROWS_PATTERN = "*:routing-rows:*"


def load_judged_rows(source: str) -> list[BookRecord]:
    """Routing-book rows, each prompt once (its latest verdict), in a stable order."""
    lines = kept_lines(source, ROWS_PATTERN, "the judged rows")
    rows: dict[str, BookRecord] = {}
    for line in lines:
        try:
            row = json.loads(line)
            prompt, as_good = str(row["prompt"]), row["as_good"]
        except (ValueError, KeyError, TypeError):
            continue  # not a judged row
        if not prompt.strip() or not isinstance(as_good, bool):
            continue
        rows.setdefault(prompt, BookRecord(prompt, 1.0 if as_good else 0.0, 1.0,  # lists are newest first
                                           row.get("weak_response") or None, row.get("strong_response") or None))
    return [rows[prompt] for prompt in sorted(rows)]
