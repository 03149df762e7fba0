"""What comes back from a provider batch, per request, as a plain domain object."""

from __future__ import annotations

from dataclasses import dataclass

from costmesh.domain import Generation


@dataclass
class BatchResult:
    custom_id: str
    status: str  # jobs.SUCCEEDED | ERRORED | CANCELED | EXPIRED
    generation: Generation | None = None  # when succeeded: usage and cost at the batch discount
    error: str = ""
