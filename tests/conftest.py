"""Shared fixtures. Redis: `REDIS_URL` when set, else one embedded Redis 8 for the session."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def redis_url():
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    from costmesh.tooling.redis_embedded import EmbeddedRedis

    with EmbeddedRedis() as redis:
        yield redis.url
