"""Fixtures shared by the chassis test packages (the pytest plugin supplies the rest)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from chassis.testing.processes import free_port


@pytest.fixture
def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    return free_port()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.Redis]:
    """An asyncio Redis client on the test's own (flushed) database."""
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()
