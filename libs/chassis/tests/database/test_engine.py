"""The engine factory configures each backend for production use."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from chassis.database import create_engine_from_settings
from chassis.settings import DatabaseSettings


def gauge(name: str, service: str) -> float:
    return REGISTRY.get_sample_value(name, {"service": service}) or 0.0


async def backend_pid(engine: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def terminate(postgres_url: str, pid: int) -> None:
    """Cut one server connection from outside, as a database restart would."""
    admin = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


def count_pings(engine: Any, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    pings: list[bool] = []
    real_ping = engine.dialect.do_ping

    def counting_ping(dbapi_connection: Any) -> bool:
        pings.append(True)
        return bool(real_ping(dbapi_connection))

    monkeypatch.setattr(engine.dialect, "do_ping", counting_ping)
    return pings


async def test_a_connection_reused_at_once_is_not_pinged_one_left_idle_is(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine_from_settings(
        postgres_url,
        DatabaseSettings(pool_size=1, max_overflow=0, pool_pre_ping_idle_seconds=0.2),
        service="pinged",
    )
    pings = count_pings(engine, monkeypatch)
    try:
        first = await backend_pid(engine)
        for _ in range(5):
            assert await backend_pid(engine) == first
        assert pings == []

        await asyncio.sleep(0.3)
        assert await backend_pid(engine) == first
        assert pings == [True]
    finally:
        await engine.dispose()


async def test_a_connection_cut_while_idle_is_replaced_before_the_query_runs(
    postgres_url: str,
) -> None:
    engine = create_engine_from_settings(
        postgres_url,
        DatabaseSettings(pool_size=1, max_overflow=0, pool_pre_ping_idle_seconds=0.1),
        service="pinged",
    )
    try:
        first = await backend_pid(engine)
        await terminate(postgres_url, first)
        await asyncio.sleep(0.2)
        # The ping found the dead connection; the pool opened a new one for the query.
        assert await backend_pid(engine) != first
    finally:
        await engine.dispose()


async def test_a_connection_cut_inside_the_idle_window_fails_one_query_then_recovers(
    postgres_url: str,
) -> None:
    engine = create_engine_from_settings(
        postgres_url,
        DatabaseSettings(pool_size=2, max_overflow=0, pool_pre_ping_idle_seconds=60),
        service="pinged",
    )
    try:
        async with engine.connect() as one, engine.connect() as two:
            pids = [
                (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                for conn in (one, two)
            ]
        for pid in pids:
            await terminate(postgres_url, pid)
        # The trade-off of the window: no ping, so the first query meets the cut connection...
        with pytest.raises(DBAPIError) as failed:
            await backend_pid(engine)
        assert failed.value.connection_invalidated
        # ...and that error retires every connection opened before it, the other cut one too.
        assert {await backend_pid(engine) for _ in range(4)}.isdisjoint(pids)
    finally:
        await engine.dispose()


async def test_an_idle_window_of_zero_pings_every_checkout_as_sqlalchemy_does(
    postgres_url: str,
) -> None:
    every = create_engine_from_settings(
        postgres_url, DatabaseSettings(pool_pre_ping_idle_seconds=0), service="pinged"
    )
    windowed = create_engine_from_settings(postgres_url, DatabaseSettings(), service="pinged")
    off = create_engine_from_settings(
        postgres_url, DatabaseSettings(pool_pre_ping=False), service="pinged"
    )
    try:
        assert every.sync_engine.pool._pre_ping
        assert not windowed.sync_engine.pool._pre_ping
        assert not off.sync_engine.pool._pre_ping
    finally:
        for engine in (every, windowed, off):
            await engine.dispose()


async def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'dir' / 'app.sqlite3'}"
    engine = create_engine_from_settings(
        url, DatabaseSettings(sqlite_busy_timeout_ms=1234), service="pragmas"
    )
    try:
        async with engine.connect() as conn:
            journal = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
            foreign_keys = (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one()
            busy = (await conn.execute(text("PRAGMA busy_timeout"))).scalar_one()
            synchronous = (await conn.execute(text("PRAGMA synchronous"))).scalar_one()
    finally:
        await engine.dispose()
    assert (journal, foreign_keys, busy, synchronous) == ("wal", 1, 1234, 1)
    assert (tmp_path / "nested" / "dir" / "app.sqlite3").exists()


async def test_sqlite_uri_filenames_get_their_directory_created(tmp_path: Path) -> None:
    path = tmp_path / "uri" / "app.sqlite3"
    engine = create_engine_from_settings(
        f"sqlite+aiosqlite:///file:{path}?mode=rwc&uri=true", DatabaseSettings(), service="uri"
    )
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await engine.dispose()
    assert path.is_file()


async def test_sqlite_enforces_foreign_keys(tmp_path: Path) -> None:
    engine = create_engine_from_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'fk.sqlite3'}", DatabaseSettings(), service="fk"
    )
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
            await conn.execute(
                text(
                    "CREATE TABLE child (id INTEGER PRIMARY KEY, "
                    "parent_id INTEGER NOT NULL REFERENCES parent(id))"
                )
            )
        with pytest.raises(DBAPIError, match="FOREIGN KEY"):
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO child (id, parent_id) VALUES (1, 42)"))
    finally:
        await engine.dispose()


async def test_in_memory_sqlite_works_without_pool_options() -> None:
    engine = create_engine_from_settings(
        "sqlite+aiosqlite:///:memory:", DatabaseSettings(pool_size=3), service="memory"
    )
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await engine.dispose()
    assert gauge("db_pool_size", "memory") == 1


async def test_postgres_statement_timeout_cancels_slow_queries(postgres_url: str) -> None:
    engine = create_engine_from_settings(
        postgres_url, DatabaseSettings(statement_timeout_ms=100), service="slowpoke"
    )
    try:
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError, match="statement timeout"):
                await conn.execute(text("SELECT pg_sleep(1)"))
    finally:
        await engine.dispose()


async def test_postgres_connections_carry_the_service_name_and_timeout(postgres_url: str) -> None:
    engine = create_engine_from_settings(
        postgres_url, DatabaseSettings(statement_timeout_ms=2500), service="orders-api"
    )
    try:
        async with engine.connect() as conn:
            name = (await conn.execute(text("SHOW application_name"))).scalar_one()
            timeout = (await conn.execute(text("SHOW statement_timeout"))).scalar_one()
    finally:
        await engine.dispose()
    assert (name, timeout) == ("orders-api", "2500ms")


async def test_postgres_statement_timeout_zero_leaves_the_server_default(
    postgres_url: str,
) -> None:
    engine = create_engine_from_settings(
        postgres_url, DatabaseSettings(statement_timeout_ms=0), service="untimed"
    )
    try:
        async with engine.connect() as conn:
            timeout = (await conn.execute(text("SHOW statement_timeout"))).scalar_one()
    finally:
        await engine.dispose()
    assert timeout == "0"


async def test_pool_gauges_follow_checkouts_and_checkins(postgres_url: str) -> None:
    engine = create_engine_from_settings(
        postgres_url, DatabaseSettings(pool_size=4), service="gauged"
    )
    before = gauge("db_pool_checked_out", "gauged")
    try:
        async with engine.connect() as first, engine.connect() as second:
            await first.execute(text("SELECT 1"))
            await second.execute(text("SELECT 1"))
            during = gauge("db_pool_checked_out", "gauged")
        after = gauge("db_pool_checked_out", "gauged")
    finally:
        await engine.dispose()
    assert gauge("db_pool_size", "gauged") == 4
    assert (during - before, after - before) == (2, 0)


async def test_unreachable_postgres_raises_operational_error_and_leaves_the_gauge(
    closed_port: int,
) -> None:
    engine = create_engine_from_settings(
        f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port}/none",
        DatabaseSettings(connect_timeout_seconds=0.5),
        service="unreachable",
    )
    before = gauge("db_pool_checked_out", "unreachable")
    try:
        for _ in range(2):
            with pytest.raises(OperationalError, match="cannot connect"):
                async with engine.connect():
                    pass
    finally:
        await engine.dispose()
    assert gauge("db_pool_checked_out", "unreachable") == before


async def test_detached_connections_leave_the_gauge(tmp_path: Path) -> None:
    engine = create_engine_from_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'detach.sqlite3'}", DatabaseSettings(), service="detach"
    )
    before = gauge("db_pool_checked_out", "detach")
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            await conn.run_sync(lambda sync_conn: sync_conn.detach())
        assert gauge("db_pool_checked_out", "detach") == before
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    "url", ["mysql+aiomysql://root@localhost/db", "postgresql+psycopg://postgres@localhost/db"]
)
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        create_engine_from_settings(url, DatabaseSettings(), service="nope")
