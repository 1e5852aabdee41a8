"""The chassis-cost bench's shipped variant really runs the services' configuration.

A trimmed app would make the bench's chassis figure look cheaper than what the
services run (issue 15); this checks the variant takes the Redis rate limiter's
path on a real Redis, the step the trimmed variant leaves out.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from chassis.testing.plugin import redis_test_url

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
REDIS_DB = 14


@pytest.fixture
def redis_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = redis_test_url(REDIS_DB)
    client = redis.Redis.from_url(url)
    client.flushdb()
    monkeypatch.setenv("BENCH_REDIS_URL", url)
    monkeypatch.syspath_prepend(str(BENCH_DIR))
    yield url
    client.flushdb()
    client.close()


async def _statuses(app: FastAPI, requests: int) -> list[int]:
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            return [(await client.get("/items/42")).status_code for _ in range(requests)]


async def test_shipped_variant_counts_every_request_in_redis(redis_url: str) -> None:
    apps = importlib.import_module("apps")
    answers = await _statuses(apps.chassis_shipped(), 3)
    assert answers == [200, 200, 200]
    keys = redis.Redis.from_url(redis_url).keys("ratelimit:*")
    assert keys, "the shipped variant never consulted the Redis rate limiter"
    sys.modules.pop("apps", None)


async def test_trimmed_variant_leaves_redis_alone(redis_url: str) -> None:
    apps = importlib.import_module("apps")
    assert await _statuses(apps.chassis_full(), 1) == [200]
    assert redis.Redis.from_url(redis_url).keys("ratelimit:*") == []
    sys.modules.pop("apps", None)
