"""The platform the bench runs: users, orders and gateway on fresh databases, and an account.

users, orders and gateway run as real processes (tests/support/platform.py,
the launcher the e2e suites use) with their real settings, each on its own
fresh Postgres database with its Alembic history applied, all on one Redis
database, in the staging environment (as docker compose runs them: JSON
logs, Redis-backed rate limits). Two changes, both said in the report: rate limits
are raised far above the offered load (the limiter still runs on every
request, its cost included), and the worker is not started (these figures
stop at the event; fulfilment jobs wait in the queue, flushed at the end).
Gateway and orders share the server core; the load generator has the other.
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import redis

from load import BENCH_DIR, pin_process

ROOT = BENCH_DIR.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from orders.settings import OrdersSettings  # noqa: E402
from tests.support.platform import Platform, PlatformConfig, migrate  # noqa: E402

PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway bench account
ORDER = {"items": [{"sku": "BENCH-1", "quantity": 1, "unit_price_minor": 1000}], "currency": "EUR"}
#: The orders relay's documented default pause between passes (read from the model).
DEFAULT_POLL_INTERVAL = OrdersSettings().outbox.poll_interval_seconds
#: How the relay learns of new rows: woken by the commit (the default) or only by its poll.
RELAY_MODES = ("wake", "poll")
UNLIMITED = "1000000000"


@dataclass
class Account:
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def admin_postgres_url() -> str:
    return os.environ.get(
        "CHASSIS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )


def redis_url() -> str:
    return os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")


@contextlib.contextmanager
def bench_databases() -> Iterator[tuple[str, str]]:
    """Two fresh Postgres databases (users, orders), migrated; dropped on exit."""
    admin = admin_postgres_url()
    base = admin.rpartition("/")[0]
    names = [f"bench_{service}_{uuid.uuid4().hex[:10]}" for service in ("users", "orders")]
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        users, orders = (
            f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1) for name in names
        )
        migrate(users_database_url=users, orders_database_url=orders)
        yield users, orders
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _flush_redis() -> None:
    client = redis.Redis.from_url(redis_url())
    try:
        client.flushdb()
    finally:
        client.close()


@contextlib.contextmanager
def running_platform(
    *, otlp_endpoint: str, log_dir: Path, relay_mode: str = "wake"
) -> Iterator[Platform]:
    """users, orders and gateway pinned to the server core; stopped (by PID) on exit."""
    _flush_redis()
    with bench_databases() as (users_db, orders_db):
        config = PlatformConfig(
            users_database_url=users_db,
            orders_database_url=orders_db,
            redis_url=redis_url(),
            data_dir=log_dir / "data",
            log_dir=log_dir,
            with_worker=False,
            env={"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint},
            service_env=_service_env(relay_mode),
        )
        platform = Platform(config)
        try:
            platform.start_all()
            for name in ("users", "orders", "gateway"):
                pin_process(platform.process(name).pid)
            yield platform
        finally:
            platform.stop_all()
            _flush_redis()


def _service_env(relay_mode: str) -> dict[str, dict[str, str]]:
    # staging, as docker compose runs them: JSON logs, Redis-backed rate limits.
    env = {
        name: {
            f"{name.upper()}_ENVIRONMENT": "staging",
            f"{name.upper()}_RATE_LIMIT__REQUESTS": UNLIMITED,
        }
        for name in ("users", "orders", "gateway")
    }
    # The documented defaults (the launcher's own test set-up polls faster); "poll" turns
    # the wake off.
    env["orders"]["ORDERS_OUTBOX__POLL_INTERVAL_SECONDS"] = str(DEFAULT_POLL_INTERVAL)
    env["orders"]["ORDERS_OUTBOX__WAKE_ON_COMMIT"] = str(relay_mode == "wake").lower()
    return env


def restart_orders(platform: Platform, *, relay_mode: str) -> None:
    platform.config.service_env = _service_env(relay_mode)
    platform.stop("orders")
    platform.start("orders")
    pin_process(platform.process("orders").pid)


def sign_up(gateway: str) -> Account:
    email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
    with httpx.Client(base_url=gateway, timeout=10) as client:
        credentials = {"email": email, "password": PASSWORD}
        client.post(
            "/api/v1/auth/signup", json={**credentials, "display_name": "Bench"}
        ).raise_for_status()
        response = client.post("/api/v1/auth/login", json=credentials)
        response.raise_for_status()
        return Account(token=str(response.json()["access_token"]))


def create_order(gateway: str, account: Account) -> str:
    response = httpx.post(f"{gateway}/api/v1/orders", json=ORDER, headers=account.auth, timeout=10)
    response.raise_for_status()
    return str(response.json()["id"])
