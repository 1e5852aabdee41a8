"""The command lines and environments the supervisor runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from devkit.commands import (
    PORTS,
    build_services,
    database_of,
    migration_command,
    ports_from,
    service_env,
)

PY = "/venv/bin/python"


def test_services_start_in_order_users_first_worker_last() -> None:
    specs = build_services(PY, data_dir=Path("/d"), redis_url=None)
    assert [spec.name for spec in specs] == ["users", "orders", "gateway", "worker"]
    assert [spec.port for spec in specs] == [8001, 8002, 8000, 8003]
    assert PORTS == {"gateway": 8000, "users": 8001, "orders": 8002, "worker": 8003}


def test_uvicorn_command_lines() -> None:
    users = build_services(PY, data_dir=Path("/d"), redis_url=None)[0]
    assert users.command == [
        PY,
        "-m",
        "uvicorn",
        "--factory",
        "users.main:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        "8001",
        "--no-proxy-headers",
    ]
    assert users.ready_url == "http://127.0.0.1:8001/health/ready"
    assert users.metrics_url == "http://127.0.0.1:8001/metrics"


def test_worker_command_and_health_port() -> None:
    worker = build_services(PY, data_dir=Path("/d"), redis_url=None)[-1]
    assert worker.command == [PY, "-m", "arq", "worker.main.WorkerSettings"]
    assert worker.env["WORKER_SERVER__PORT"] == "8003"
    assert worker.ready_url == "http://127.0.0.1:8003/health/ready"


def test_no_worker_leaves_it_out() -> None:
    specs = build_services(PY, data_dir=Path("/d"), redis_url=None, worker=False)
    assert [spec.name for spec in specs] == ["users", "orders", "gateway"]


def test_env_sets_data_dir_and_redis_only_when_given() -> None:
    assert service_env("orders", data_dir=Path("/d"), redis_url=None) == {
        "PYTHONUNBUFFERED": "1",
        "ORDERS_DATA_DIR": "/d",
    }
    env = service_env("gateway", data_dir=Path("/d"), redis_url="redis://h:1/13")
    assert env["GATEWAY_REDIS__URL"] == "redis://h:1/13"
    assert env["GATEWAY_DATA_DIR"] == "/d"


def test_migration_command_uses_the_services_alembic_ini() -> None:
    assert migration_command(sys.executable, Path("/repo"), "users") == [
        sys.executable,
        "-m",
        "alembic",
        "-c",
        "/repo/services/users/alembic.ini",
        "upgrade",
        "head",
    ]


def test_database_of_names_sqlite_or_the_url_without_its_password() -> None:
    assert database_of("users", {}, Path("/d")) == "SQLite /d/users.sqlite3"
    env = {"ORDERS_DATABASE__URL": "postgresql+asyncpg://app:s3cret@db:5432/orders"}
    assert database_of("orders", env, Path("/d")) == "postgresql+asyncpg://app:***@db:5432/orders"
    env = {"ORDERS_DATABASE__URL": "postgresql+asyncpg://db/orders"}
    assert database_of("orders", env, Path("/d")) == "postgresql+asyncpg://db/orders"


def test_a_port_base_moves_all_four_ports_and_tells_each_service_where_the_others_are() -> None:
    ports = ports_from(18810)
    assert ports == {"gateway": 18810, "users": 18811, "orders": 18812, "worker": 18813}
    specs = {
        spec.name: spec
        for spec in build_services(
            PY, data_dir=Path("/d"), redis_url=None, ports=ports, console_dir=Path("/c/dist")
        )
    }
    assert specs["gateway"].ready_url == "http://127.0.0.1:18810/health/ready"
    assert specs["users"].command[-2] == "18811"
    gateway = specs["gateway"].env
    assert gateway["GATEWAY_UPSTREAMS__USERS__BASE_URL"] == "http://127.0.0.1:18811"
    assert gateway["GATEWAY_UPSTREAMS__ORDERS__BASE_URL"] == "http://127.0.0.1:18812"
    assert gateway["GATEWAY_AUTH__JWKS_URL"] == "http://127.0.0.1:18811/.well-known/jwks.json"
    assert gateway["GATEWAY_STATUS__WORKER_URL"] == "http://127.0.0.1:18813"
    assert gateway["GATEWAY_CONSOLE__DIRECTORY"] == "/c/dist"
    assert specs["orders"].env["ORDERS_AUTH__JWKS_URL"] == gateway["GATEWAY_AUTH__JWKS_URL"]
    assert specs["worker"].env["WORKER_SERVER__PORT"] == "18813"
    assert specs["worker"].env["WORKER_UPSTREAMS__ORDERS__BASE_URL"] == "http://127.0.0.1:18812"


def test_a_port_base_without_room_for_four_ports_is_refused() -> None:
    with pytest.raises(ValueError, match="no room"):
        ports_from(65534)
