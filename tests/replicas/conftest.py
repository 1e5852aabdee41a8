"""Two replicas of every service behind a local nginx, on one Postgres and one Redis.

users, orders, gateway and worker each run twice (tests.support.platform, one
`Platform` per replica set, on fixed ports of the suite's range), and every
call between services goes through the balancer (tests/replicas/balancer.py):
the gateways reach users and orders through it, orders and the gateways fetch
the JWKS through it, the workers call users and orders through it, and the
clients reach the gateways through it. Each service has its own database with
its Alembic history applied once; every process shares one Redis database.

At the end of a session in which every replica test passed, the "Replicas"
section of docs/reliability.md is rewritten from what they measured.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from chassis.testing.plugin import redis_test_url
from tests.replicas.balancer import Nginx, Upstream, nginx_available
from tests.replicas.report import REPORT, write_report
from tests.support.platform import Platform, PlatformConfig, migrate

REPLICAS_REDIS_DB = int(os.environ.get("CHASSIS_REPLICAS_REDIS_DB", "11"))
#: The suite's ports: nginx listens on BALANCER_PORTS; replica i's services on
#: REPLICA_BASE + 10 * i + (0 users, 1 orders, 2 gateway, 3 worker).
BALANCER_PORTS = {"gateway": 18500, "users": 18501, "orders": 18502}
REPLICA_BASE = 18510
REPLICA_COUNT = 2
READY_TIMEOUT = 90.0
#: The per-user limit on one path that the rate-limit test spends (GET /api/v1/users/me).
RATE_LIMIT = 7
RATE_LIMIT_PATH = "/api/v1/users/me"
RATE_LIMIT_WINDOW_SECONDS = 300
#: How often each users process re-reads its signing keys (default 30 s).
KEY_REFRESH_SECONDS = 1.0


def replica_ports(index: int) -> dict[str, int]:
    base = REPLICA_BASE + 10 * index
    return {"users": base, "orders": base + 1, "gateway": base + 2, "worker": base + 3}


def _env() -> dict[str, str]:
    env: dict[str, str] = {}
    for prefix in ("USERS", "ORDERS", "GATEWAY", "WORKER"):
        env |= {
            f"{prefix}_LOG__LEVEL": "WARNING",
            f"{prefix}_SERVER__DRAIN_SECONDS": "1",
            f"{prefix}_SERVER__GRACEFUL_TIMEOUT_SECONDS": "10",
        }
    rule = {
        "path_prefix": RATE_LIMIT_PATH,
        "methods": ["GET"],
        "requests": RATE_LIMIT,
        "window_seconds": RATE_LIMIT_WINDOW_SECONDS,
    }
    return env | {
        # The journey's accounts all come from 127.0.0.1: only the tested rule is tight.
        "GATEWAY_RATE_LIMIT__REQUESTS": "100000",
        "GATEWAY_RATE_LIMIT__RULES": json.dumps([rule]),
        "USERS_LOGIN_LIMIT__REQUESTS": "10000",
        "USERS_RATE_LIMIT__REQUESTS": "100000",
        "ORDERS_RATE_LIMIT__REQUESTS": "100000",
        "USERS_SIGNING__KEY_REFRESH_SECONDS": str(KEY_REFRESH_SECONDS),
        "WORKER_CRONS__ENABLED": "false",
        "WORKER_FULFIL__LATENCY_SECONDS": "0.2",
        "WORKER_FULFIL__RETRY_BACKOFF_INITIAL_SECONDS": "0.2",
        "WORKER_FULFIL__RETRY_BACKOFF_MAX_SECONDS": "1.0",
    }


@dataclass
class Replicas:
    """The running replicas, the balancer in front of them, and the shared stores."""

    nginx: Nginx
    sets: list[Platform]
    users_database_url: str
    orders_database_url: str
    redis_url: str
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def balancer(self, service: str) -> str:
        return self.nginx.url(service)

    def replica(self, service: str, index: int) -> str:
        """Replica `index` (0 or 1) of `service`, direct (not through nginx)."""
        return self.sets[index].url(service)

    def label(self, address: str) -> str:
        """'orders-2' for a replica's host:port."""
        port = int(address.rpartition(":")[2])
        for index, platform in enumerate(self.sets):
            for name, own in platform.ports.items():
                if own == port:
                    return f"{name}-{index + 1}"
        return address

    def restart(self, service: str, index: int) -> float:
        """SIGTERM one replica, wait for it to exit, start it again; returns seconds it was out."""
        started = time.monotonic()
        self.sets[index].stop(service)
        self.sets[index].start(service)
        return time.monotonic() - started

    def postgres_dsn(self, database_url: str) -> str:
        return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)

    async def orders_query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        dsn = self.postgres_dsn(self.orders_database_url)
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            cursor = await conn.execute(sql, params)  # type: ignore[arg-type]
            return list(await cursor.fetchall())

    def users_env(self, index: int) -> dict[str, str]:
        """The environment replica `index` of users runs with (for its CLI commands)."""
        return self.sets[index].process_env("users")


@pytest.fixture(scope="session")
def replicas(
    postgres_database_factory: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replicas]:
    if not nginx_available():
        pytest.fail("nginx is not installed (Debian: apt-get install nginx-light)")
    users_db = postgres_database_factory("users_replicas")
    orders_db = postgres_database_factory("orders_replicas")
    migrate(users_database_url=users_db, orders_database_url=orders_db)
    redis_url = redis_test_url(REPLICAS_REDIS_DB)
    with redis.Redis.from_url(redis_url) as client:
        client.flushdb()

    sets = [replica_ports(index) for index in range(REPLICA_COUNT)]
    nginx = Nginx(
        tmp_path_factory.mktemp("replicas-nginx"),
        [
            Upstream(name, port, [ports[name] for ports in sets])
            for name, port in BALANCER_PORTS.items()
        ],
    )

    def route(caller: str, peer: str, url: str) -> str:
        del caller, url
        return nginx.url(peer)

    platforms = []
    for index, ports in enumerate(sets):
        config = PlatformConfig(
            users_database_url=users_db,
            orders_database_url=orders_db,
            redis_url=redis_url,
            data_dir=tmp_path_factory.mktemp(f"replica-{index + 1}-data"),
            env=_env(),
            service_env={
                "gateway": {"GATEWAY_STATUS__WORKER_URL": f"http://127.0.0.1:{ports['worker']}"}
            },
            route=route,
            ready_timeout=READY_TIMEOUT,
            log_dir=tmp_path_factory.mktemp(f"replica-{index + 1}-logs"),
            ports=ports,
        )
        platforms.append(Platform(config))
    nginx.start()
    try:
        _start_all(platforms)
        yield Replicas(
            nginx=nginx,
            sets=platforms,
            users_database_url=users_db,
            orders_database_url=orders_db,
            redis_url=redis_url,
        )
    finally:
        for platform in platforms:
            platform.stop_all()
        nginx.stop()
        with redis.Redis.from_url(redis_url) as client:
            client.flushdb()


def _start_all(platforms: list[Platform]) -> None:
    """users-1 first (it makes the signing key), then every other process side by side."""
    platforms[0].start("users")
    names = [(p, name) for p in platforms for name in ("users", "orders", "gateway", "worker")]
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        starts = [
            pool.submit(platform.start, name)
            for platform, name in names
            if not (platform is platforms[0] and name == "users")
        ]
        for started in starts:
            started.result()


# --- client side -----------------------------------------------------------------------


# --- the report -----------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    section = getattr(getattr(item, "module", None), "SECTION", None)
    if section is None:
        return
    if report.when == "call" and report.passed:
        REPORT.passed.add(item.name)
    elif report.failed:
        REPORT.passed.discard(item.name)
        REPORT.failed.add(item.name)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if REPORT.complete():
        write_report(REPORT, path=Path(session.config.rootpath) / "docs" / "reliability.md")
