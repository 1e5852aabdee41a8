"""The database builder step: resource lifetime, readiness, default SQLite file."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from chassis.builder import AppBuilder
from chassis.database import Database
from chassis.settings import BaseServiceSettings

SettingsFactory = Callable[..., BaseServiceSettings]


async def test_readiness_reports_the_database_ok(
    db_settings: SettingsFactory, make_client: Callable[..., Any]
) -> None:
    app = AppBuilder(db_settings()).without_middleware().with_database().build()
    async with make_client(app) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 200
    database = response.json()["checks"]["database"]
    assert database["status"] == "ok"
    assert database["details"] == {"dialect": "sqlite", "pool_checked_out": 0}


async def test_readiness_names_the_database_when_it_is_down(
    db_settings: SettingsFactory, closed_port: int, make_client: Callable[..., Any]
) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port}/app"
    settings = db_settings(url=url, connect_timeout_seconds=0.5)
    app = AppBuilder(settings).without_middleware().with_database().build()
    async with make_client(app) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["database"]
    assert body["checks"]["database"]["error"] == "OperationalError"


async def test_default_url_is_a_sqlite_file_in_the_data_dir(
    db_settings: SettingsFactory, tmp_path: Path, make_client: Callable[..., Any]
) -> None:
    app = AppBuilder(db_settings()).without_middleware().with_database().build()
    async with make_client(app) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 200
    assert (tmp_path / "data" / "dbtest.sqlite3").is_file()


async def test_connections_are_closed_at_shutdown(
    postgres_url: str, db_settings: SettingsFactory, make_client: Callable[..., Any]
) -> None:
    service = f"shutdown-{uuid.uuid4().hex[:8]}"
    settings = db_settings(url=postgres_url).model_copy(update={"service_name": service})
    app = AppBuilder(settings).without_middleware().with_database().build()
    dsn = make_url(postgres_url).set(drivername="postgresql").render_as_string(False)

    def sessions() -> int:
        with psycopg.connect(dsn) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (service,)
            ).fetchone()
        return int(row[0]) if row else -1

    async with make_client(app) as client:
        await client.get("/health/ready")
        assert isinstance(app.state.database, Database)
        during = sessions()
    assert (during, sessions()) == (1, 0)
