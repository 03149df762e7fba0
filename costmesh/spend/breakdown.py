"""Spend by tenant, by API key and by model, for `costmesh report --by` and the gateway's
dashboard API: a period of cost records grouped, biggest spender first, with every group past
the first `limit` summed into one "others" row (so a table, a chart or a JSON answer stays
bounded however many tenants or keys there are). Pure functions over `CostRecord`s.

Groups: `tenant` is the record's tenant; `key` the id of the API key the request came with
(never the key itself; "(no key)" for records written with authentication off or before keys
were recorded); `model` the model that answered, "cache" for answers the cache served (their
cost is the embedding, not a model's) and "(failed)" for requests that got no answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from costmesh.cost_records import CostRecord
from costmesh.vocabulary import usd

DIMENSIONS = ("tenant", "key", "model")
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_NAME_CHARS = 64
NO_KEY, NO_TENANT, FAILED, CACHE = "(no key)", "(no tenant)", "(failed)", "cache"


def _model(record: CostRecord) -> str:
    if not record.answered:
        return FAILED
    if record.cached:
        return CACHE
    return record.model or "(unknown)"


GROUP_OF: dict[str, Callable[[CostRecord], str]] = {
    "tenant": lambda r: r.tenant_id or NO_TENANT,
    "key": lambda r: r.key_id or NO_KEY,
    "model": _model,
}


@dataclass
class Group:
    name: str
    requests: int = 0
    answered: int = 0
    failed: int = 0
    cache_hits: int = 0
    cost_usd: float = 0.0
    baseline_usd: float = 0.0

    @property
    def saving_usd(self) -> float:
        return self.baseline_usd - self.cost_usd

    @property
    def saving_ratio(self) -> float:
        return self.saving_usd / self.baseline_usd if self.baseline_usd else 0.0

    @property
    def hit_rate(self) -> float:
        return self.cache_hits / self.answered if self.answered else 0.0

    def add(self, record: CostRecord) -> None:
        if record.shadow:  # a shadow check's line: its cost, no request (`costmesh.cost_records`)
            self.cost_usd += record.cost_usd
            return
        self.requests += 1
        self.cost_usd += record.cost_usd
        if not record.answered:
            self.failed += 1
            return
        self.answered += 1
        self.cache_hits += record.cached
        self.baseline_usd += record.baseline_usd

    def merge(self, other: Group) -> None:
        for name in ("requests", "answered", "failed", "cache_hits", "cost_usd", "baseline_usd"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_json(self) -> dict:
        """Money in USD rounded to micro-dollars, as every other surface shows it."""
        out = asdict(self)
        for name in ("cost_usd", "baseline_usd"):
            out[name] = usd(out[name])
        out["saving_usd"] = usd(self.saving_usd)
        out["saving_ratio"] = round(self.saving_ratio, 4)
        out["hit_rate"] = round(self.hit_rate, 4)
        return out


@dataclass
class Breakdown:
    dimension: str
    groups: list[Group]  # the first `limit`, biggest cost first (then baseline, then name)
    others: Group | None  # the rest summed, None when there is no rest
    total_groups: int

    def to_json(self) -> dict:
        return {
            "by": self.dimension,
            "groups": [g.to_json() for g in self.groups],
            "others": self.others.to_json() if self.others else None,
            "total_groups": self.total_groups,
        }


def _name(value: str) -> str:
    return value if len(value) <= MAX_NAME_CHARS else value[:MAX_NAME_CHARS - 1] + "…"


def breakdown(records: Iterable[CostRecord], dimension: str, since: float, until: float,
              limit: int = DEFAULT_LIMIT) -> Breakdown:
    """The records with since <= ts < until grouped by `dimension` (tenant, key or model)."""
    if dimension not in GROUP_OF:
        raise ValueError(f"dimension must be one of {', '.join(DIMENSIONS)}, not {dimension!r}")
    limit = max(1, min(limit, MAX_LIMIT))
    group_of = GROUP_OF[dimension]
    groups: dict[str, Group] = {}
    for record in records:
        if not since <= record.ts < until:
            continue
        name = _name(group_of(record))
        groups.setdefault(name, Group(name)).add(record)
    ordered = sorted(groups.values(), key=lambda g: (-g.cost_usd, -g.baseline_usd, g.name))
    rest = ordered[limit:]
    others = None
    if rest:
        others = Group(f"({len(rest)} others)")
        for group in rest:
            others.merge(group)
    return Breakdown(dimension, ordered[:limit], others, len(ordered))


def all_rows(result: Breakdown) -> list[Group]:
    """The groups shown, then the "others" row when there is one."""
    return [*result.groups, *([result.others] if result.others else [])]
