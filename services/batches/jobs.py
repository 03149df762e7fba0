"""Batch jobs and where they live: Redis, so a restart in the middle of a batch loses nothing.

Keys (prefix `costmesh:batch:`): `<id>:meta` the job (JSON), `<id>:items` a hash of its
requests by index (JSON, protobuf payloads base64), the set `active` of jobs still waiting on
a provider, and `<id>:lock`, the lease (redis-py's `Lock`) one replica holds while it changes a
job. Finished jobs are kept for `retention_s`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.asyncio.lock import Lock
from redis.exceptions import LockError

from costmesh.errors import NotFound, Unavailable

log = structlog.get_logger()

PREFIX = "costmesh:batch:"

PENDING, SUCCEEDED, ERRORED, CANCELED, EXPIRED = "pending", "succeeded", "errored", "canceled", "expired"
SUBMITTING, IN_PROGRESS, CANCELING, ENDED = "submitting", "in_progress", "canceling", "ended"


@dataclass
class Item:
    """One request of a batch: what was asked, where it went, what came back."""

    index: int
    request_id: str
    request: bytes  # the CompleteRequest, serialized
    status: str = PENDING
    provider: str = ""
    model: str = ""
    tier: int = 0
    classified_tier: int = 0
    score: float = 0.0
    cache_status: int = 0
    provider_batch: str = ""  # the provider's batch id this request went out in
    embedding_usd: float = 0.0  # the cache lookup's embedding cost
    response: bytes = b""  # the CompleteResponse, serialized, once answered
    error: str = ""

    @property
    def custom_id(self) -> str:
        """The id the provider sees (request ids may not fit the providers' custom_id rules)."""
        return f"r{self.index}"

    def to_json(self) -> str:
        data = asdict(self)
        data["request"] = base64.b64encode(self.request).decode("ascii")
        data["response"] = base64.b64encode(self.response).decode("ascii")
        return json.dumps(data)

    @classmethod
    def from_json(cls, raw: str | bytes) -> "Item":
        data = json.loads(raw)
        data["request"] = base64.b64decode(data["request"])
        data["response"] = base64.b64decode(data["response"])
        return cls(**data)


@dataclass
class ProviderBatch:
    provider: str
    batch_id: str
    model: str
    done: bool = False


@dataclass
class Job:
    id: str
    tenant_id: str
    created_at: float
    total: int
    status: str = SUBMITTING  # until every provider batch is out; the poller leaves it alone meanwhile
    ended_at: float = 0.0
    provider_batches: list[ProviderBatch] = field(default_factory=list)

    @classmethod
    def new(cls, tenant_id: str, total: int, now: float) -> "Job":
        return cls(id=f"cmbatch_{uuid.uuid4().hex}", tenant_id=tenant_id, created_at=now, total=total)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str | bytes) -> "Job":
        data: dict[str, Any] = json.loads(raw)
        data["provider_batches"] = [ProviderBatch(**p) for p in data.get("provider_batches", [])]
        return cls(**data)


class JobStore:
    """Jobs and items in Redis. Redis failures surface as Unavailable: a batch needs its state."""

    def __init__(self, redis: aioredis.Redis, retention_s: int = 7 * 24 * 3600, prefix: str = PREFIX):
        self._redis = redis
        self._retention_s = retention_s
        self._prefix = prefix
        self._active = prefix + "active"

    @classmethod
    def from_url(cls, url: str, retention_s: int = 7 * 24 * 3600) -> "JobStore":
        return cls(aioredis.Redis.from_url(url), retention_s)

    async def create(self, job: Job, items: list[Item]) -> None:
        async with self._guard():
            pipe = self._redis.pipeline(transaction=True)
            pipe.set(self._meta(job.id), job.to_json())
            for chunk in _chunks(items, 1000):
                pipe.hset(self._items(job.id), mapping={str(i.index): i.to_json() for i in chunk})
            if job.status != ENDED:
                pipe.sadd(self._active, job.id)
            await pipe.execute()

    async def job(self, job_id: str) -> Job:
        async with self._guard():
            raw = await self._redis.get(self._meta(job_id))
        if raw is None:
            raise NotFound(f"batch_id: no batch {job_id!r}")
        return Job.from_json(raw)

    async def save_job(self, job: Job) -> None:
        async with self._guard():
            pipe = self._redis.pipeline(transaction=True)
            pipe.set(self._meta(job.id), job.to_json())
            if job.status == ENDED:
                pipe.srem(self._active, job.id)
                pipe.expire(self._meta(job.id), self._retention_s)
                pipe.expire(self._items(job.id), self._retention_s)
            await pipe.execute()

    async def items(self, job_id: str) -> list[Item]:
        async with self._guard():
            raw = await self._redis.hgetall(self._items(job_id))
        return sorted((Item.from_json(v) for v in raw.values()), key=lambda i: i.index)

    async def save_items(self, job_id: str, items: list[Item]) -> None:
        if not items:
            return
        async with self._guard():
            for chunk in _chunks(items, 1000):
                await self._redis.hset(self._items(job_id), mapping={str(i.index): i.to_json() for i in chunk})

    async def active(self) -> list[str]:
        async with self._guard():
            return sorted(m.decode() if isinstance(m, bytes) else m for m in await self._redis.smembers(self._active))

    async def activate(self, job_id: str) -> None:
        """Put a job (back) on the set the poller reads."""
        async with self._guard():
            await self._redis.sadd(self._active, job_id)

    async def lock(self, job_id: str, ttl_s: float = 60.0, wait_s: float = 0.0) -> "JobLease | None":
        """A lease on a job, so two replicas never finish (or cancel) the same provider batch at once.

        None when another holder has it and `wait_s` passed. The lease lasts `ttl_s` and is renewed
        every third of it while held, so a long round keeps it and a crashed holder loses it.
        """
        lock = Lock(self._redis, self._prefix + job_id + ":lock", timeout=ttl_s, sleep=0.05,
                    blocking=wait_s > 0, blocking_timeout=wait_s or None, thread_local=False)
        async with self._guard():
            if not await lock.acquire():
                return None
        return JobLease(lock, ttl_s / 3)

    async def close(self) -> None:
        await self._redis.aclose()

    def _guard(self):
        return _RedisGuard()

    def _meta(self, job_id: str) -> str:
        return self._prefix + job_id + ":meta"

    def _items(self, job_id: str) -> str:
        return self._prefix + job_id + ":items"


class JobLease:
    """A held job lock: its lease renewed in the background until `release`."""

    def __init__(self, lock: Lock, renew_every_s: float):
        self._lock = lock
        self._renewer = asyncio.create_task(self._renew(renew_every_s), name=f"costmesh-lease-{lock.name}")

    async def _renew(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await self._lock.reacquire()  # back to the full lease
            except LockError:  # expired and taken over (e.g. Redis was unreachable for a whole lease)
                log.warning("batch job lease lost", lock=str(self._lock.name))
                return
            except (aioredis.RedisError, OSError) as exc:  # try again next time: the lease has time left
                log.warning("batch job lease not renewed", lock=str(self._lock.name), error=str(exc))

    async def release(self) -> None:
        self._renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._renewer
        try:
            await self._lock.release()
        except LockError:  # no longer ours (expired): nothing to release
            pass
        except (aioredis.RedisError, OSError) as exc:  # it expires on its own
            log.warning("batch job lease not released", lock=str(self._lock.name), error=str(exc))


class _RedisGuard:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type, exc, tb) -> bool:
        if exc is not None and isinstance(exc, (aioredis.RedisError, OSError)):
            raise Unavailable(f"batch state store (Redis) unavailable: {exc}") from exc
        return False


def _chunks(items: list[Item], size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]
