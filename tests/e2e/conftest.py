"""The whole platform as real processes: users, orders, gateway (uvicorn) and the Arq worker.

Each service gets its own fresh Postgres database with its Alembic history
applied, one Redis database shared by all, and every process exports its
spans to an in-test OTLP receiver so a test can follow one trace across them.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from chassis.database.migrations import upgrade_to_head
from chassis.testing.processes import free_port, service_process, uvicorn_process
from tests.e2e.otlp_sink import SpanSink, otlp_sink

ROOT = Path(__file__).resolve().parents[2]
WORKER_SECRET = "e2e-worker-client-secret"
E2E_REDIS_DB = int(os.environ.get("CHASSIS_E2E_REDIS_DB", "14"))


@dataclass(frozen=True)
class Platform:
    gateway: str
    users: str
    orders: str
    worker_health: str
    spans: SpanSink


def _redis_url() -> str:
    base = os.environ.get("CHASSIS_TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
    return f"{base}/{E2E_REDIS_DB}"


@pytest.fixture(scope="session")
def platform(
    postgres_database_factory: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    users_db = postgres_database_factory("users_e2e")
    orders_db = postgres_database_factory("orders_e2e")
    upgrade_to_head(str(ROOT / "services/users/migrations"), users_db)
    upgrade_to_head(str(ROOT / "services/orders/migrations"), orders_db)
    redis_url = _redis_url()
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    data_dir = tmp_path_factory.mktemp("e2e-data")

    with ExitStack() as stack:
        otlp_endpoint, spans = stack.enter_context(otlp_sink())
        common = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
            "OTEL_TRACES_SAMPLER_ARG": "1.0",
            # Export quickly so the trace assertion does not wait for the 5 s default.
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "PYTHONUNBUFFERED": "1",
        }
        users = stack.enter_context(
            uvicorn_process(
                "users.main:create_app",
                env={
                    **common,
                    "USERS_DATABASE__URL": users_db,
                    "USERS_REDIS__URL": redis_url,
                    "USERS_DATA_DIR": str(data_dir / "users"),
                    "USERS_SERVICE_CLIENTS": json.dumps(
                        {"worker": {"secret": WORKER_SECRET, "scopes": ["orders:internal"]}}
                    ),
                },
                ready_path="/health/ready",
            )
        )
        jwks = users + "/.well-known/jwks.json"
        orders = stack.enter_context(
            uvicorn_process(
                "orders.main:create_app",
                env={
                    **common,
                    "ORDERS_DATABASE__URL": orders_db,
                    "ORDERS_REDIS__URL": redis_url,
                    "ORDERS_AUTH__JWKS_URL": jwks,
                    "ORDERS_OUTBOX__POLL_INTERVAL_SECONDS": "0.05",
                },
                ready_path="/health/ready",
            )
        )
        gateway = stack.enter_context(
            uvicorn_process(
                "gateway.main:create_app",
                env={
                    **common,
                    "GATEWAY_REDIS__URL": redis_url,
                    "GATEWAY_AUTH__JWKS_URL": jwks,
                    "GATEWAY_UPSTREAMS__USERS__BASE_URL": users,
                    "GATEWAY_UPSTREAMS__ORDERS__BASE_URL": orders,
                    "GATEWAY_EVENTS__HEARTBEAT_SECONDS": "1",
                },
                ready_path="/health/ready",
            )
        )
        health_port = free_port()
        worker_health = f"http://127.0.0.1:{health_port}"
        stack.enter_context(
            service_process(
                [sys.executable, "-m", "arq", "worker.main.WorkerSettings"],
                ready_url=worker_health + "/health/ready",
                env={
                    **common,
                    "WORKER_REDIS__URL": redis_url,
                    "WORKER_SERVER__PORT": str(health_port),
                    "WORKER_UPSTREAMS__USERS__BASE_URL": users,
                    "WORKER_UPSTREAMS__ORDERS__BASE_URL": orders,
                    "WORKER_CLIENT_SECRET": WORKER_SECRET,
                    "WORKER_FULFIL__LATENCY_SECONDS": "1.0",
                },
            )
        )
        yield Platform(
            gateway=gateway, users=users, orders=orders, worker_health=worker_health, spans=spans
        )
