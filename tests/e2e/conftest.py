"""The whole platform as real processes, every one exporting its spans to an in-test receiver.

Each service gets its own fresh Postgres database with its Alembic history
applied and one Redis database shared by all (tests.support.platform), so a
test can follow one trace across gateway, orders and the worker.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis

from chassis.testing.plugin import redis_test_url
from tests.e2e.otlp_sink import SpanSink, otlp_sink
from tests.support.platform import PlatformConfig, migrate, running_platform

E2E_REDIS_DB = int(os.environ.get("CHASSIS_E2E_REDIS_DB", "14"))


@dataclass(frozen=True)
class E2EPlatform:
    gateway: str
    users: str
    orders: str
    worker_health: str
    spans: SpanSink


def _redis_url() -> str:
    return redis_test_url(E2E_REDIS_DB)


@pytest.fixture(scope="session")
def platform(
    postgres_database_factory: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[E2EPlatform]:
    users_db = postgres_database_factory("users_e2e")
    orders_db = postgres_database_factory("orders_e2e")
    migrate(users_database_url=users_db, orders_database_url=orders_db)
    redis_url = _redis_url()
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()

    with otlp_sink() as (otlp_endpoint, spans):
        config = PlatformConfig(
            users_database_url=users_db,
            orders_database_url=orders_db,
            redis_url=redis_url,
            data_dir=tmp_path_factory.mktemp("e2e-data"),
            env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
                "OTEL_TRACES_SAMPLER_ARG": "1.0",
                # Export quickly so the trace assertion does not wait for the 5 s default.
                "OTEL_BSP_SCHEDULE_DELAY": "200",
            },
            service_env={"worker": {"WORKER_FULFIL__LATENCY_SECONDS": "1.0"}},
        )
        with running_platform(config) as running:
            yield E2EPlatform(
                gateway=running.gateway,
                users=running.users,
                orders=running.orders,
                worker_health=running.worker_health,
                spans=spans,
            )
