"""An overload of orders, then a normal run at once: the run is healthy, no abandoned work lands.

orders gets a tiny pool (2 + 1 overflow) and a concurrency limit of 3, and
every order INSERT is held back by a table lock the test takes, so each
admitted POST is slow. Thirty at once through the gateway, whose deadline for
orders is one second: the admitted ones hit that deadline, the rest are shed
with 503 at once. Then the lock goes and twenty POSTs follow straight away, one
after the other. Each must be created, and the only orders stored are those
that were answered 201: orders dropped what the gateway had stopped waiting for.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest
import redis

from chassis.testing.plugin import redis_test_url
from tests.support.accounts import ORDER, sign_up_and_log_in
from tests.support.platform import PlatformConfig, migrate, running_platform

pytestmark = pytest.mark.e2e

OVERLOAD_REDIS_DB = int(os.environ.get("CHASSIS_OVERLOAD_REDIS_DB", "13"))
BURST = 30
HEALTHY_RUN = 20
GATEWAY_DEADLINE_SECONDS = 1.0


@dataclass(frozen=True)
class OverloadPlatform:
    gateway: str
    orders: str
    orders_dsn: str


@pytest.fixture(scope="module")
def overload_platform(
    postgres_database_factory: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OverloadPlatform]:
    users_db = postgres_database_factory("users_overload")
    orders_db = postgres_database_factory("orders_overload")
    migrate(users_database_url=users_db, orders_database_url=orders_db)
    redis_url = redis_test_url(OVERLOAD_REDIS_DB)
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    config = PlatformConfig(
        users_database_url=users_db,
        orders_database_url=orders_db,
        redis_url=redis_url,
        data_dir=tmp_path_factory.mktemp("overload-data"),
        with_worker=False,
        env={
            # One caller sends everything: rate limits out of the way.
            "GATEWAY_RATE_LIMIT__REQUESTS": "100000",
            "GATEWAY_RATE_LIMIT__RULES": "[]",
            "ORDERS_RATE_LIMIT__REQUESTS": "100000",
            "USERS_LOGIN_LIMIT__REQUESTS": "10000",
            # Below the gateway's breaker threshold (5): the admitted POSTs all time out, and
            # with the default limit (4 per pooled connection, 12 here) their 504s would
            # rightly open the breaker for the run that follows. The default's sizing is
            # test_shedding's; this test is about what happens past the limit.
            "ORDERS_SERVER__MAX_CONCURRENT_REQUESTS": "3",
            "ORDERS_DATABASE__POOL_SIZE": "2",
            "ORDERS_DATABASE__MAX_OVERFLOW": "1",
            "GATEWAY_UPSTREAMS__ORDERS__DEADLINE_SECONDS": str(GATEWAY_DEADLINE_SECONDS),
        },
    )
    with running_platform(config) as running:
        yield OverloadPlatform(
            gateway=running.gateway,
            orders=running.orders,
            orders_dsn=orders_db.replace("postgresql+asyncpg://", "postgresql://", 1),
        )


async def post_order(client: httpx.AsyncClient, auth: dict[str, str]) -> httpx.Response:
    headers = {**auth, "Idempotency-Key": str(uuid.uuid4())}
    return await client.post("/api/v1/orders", json=ORDER, headers=headers)


def shed_total(metrics: str, reason: str) -> float:
    pattern = rf'^http_requests_shed_total\{{reason="{reason}",service="orders"\}} (\S+)$'
    found = re.search(pattern, metrics, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_a_normal_run_right_after_an_overload_is_healthy(
    overload_platform: OverloadPlatform,
) -> None:
    async with httpx.AsyncClient(base_url=overload_platform.gateway, timeout=30) as client:
        alice = await sign_up_and_log_in(client, "overload")
        auth = {"Authorization": f"Bearer {alice['access_token']}"}

        async with await psycopg.AsyncConnection.connect(overload_platform.orders_dsn) as lock:
            # Reads go on; every INSERT INTO orders waits for this transaction.
            await lock.execute("LOCK TABLE orders IN EXCLUSIVE MODE")
            burst = await asyncio.gather(*(post_order(client, auth) for _ in range(BURST)))
            await lock.rollback()

        statuses = [answer.status_code for answer in burst]
        shed = [answer for answer in burst if answer.status_code == 503]
        assert set(statuses) <= {503, 504}, statuses
        assert shed, statuses
        assert all(answer.headers.get("retry-after") for answer in shed)

        healthy = [(await post_order(client, auth)).status_code for _ in range(HEALTHY_RUN)]
        assert healthy == [201] * HEALTHY_RUN

    async with await psycopg.AsyncConnection.connect(overload_platform.orders_dsn) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM orders WHERE owner_id = %s", (alice["user"]["id"],)
        )
        row = await cursor.fetchone()
    # Nothing was stored for a request whose caller had been answered 503 or 504.
    assert row is not None
    assert row[0] == HEALTHY_RUN

    async with httpx.AsyncClient(base_url=overload_platform.orders, timeout=10) as orders:
        metrics = (await orders.get("/metrics")).text
    assert shed_total(metrics, "concurrency") == len(shed)
