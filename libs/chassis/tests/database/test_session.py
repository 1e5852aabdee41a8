"""The session dependency commits on success, rolls back on error, and maps outages to 503."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import func, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from chassis.builder import AppBuilder
from chassis.database import Database, DatabaseDep, SessionDep, make_metadata
from chassis.errors import Conflict
from chassis.settings import BaseServiceSettings

SettingsFactory = Callable[..., BaseServiceSettings]


class Base(DeclarativeBase):
    metadata = make_metadata()


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]


def notes_app(settings: BaseServiceSettings) -> FastAPI:
    router = APIRouter()

    @router.post("/notes/{note_id}", status_code=201)
    async def create_note(note_id: int, session: SessionDep, fail: bool = False) -> dict[str, int]:
        session.add(Note(id=note_id, body="hello"))
        await session.flush()
        if fail:
            raise Conflict("changed my mind")
        return {"id": note_id}

    @router.post("/unflushed/{note_id}", status_code=201)
    async def create_unflushed(note_id: int, session: SessionDep) -> dict[str, int]:
        # The INSERT happens at commit, in the dependency, after this returns.
        session.add(Note(id=note_id, body="late"))
        return {"id": note_id}

    @router.get("/notes/count")
    async def count_notes(session: SessionDep) -> dict[str, int]:
        return {"count": (await session.scalar(select(func.count()).select_from(Note))) or 0}

    @router.get("/file")
    async def read_file(session: SessionDep) -> None:
        await session.execute(text("SELECT 1"))
        raise FileNotFoundError(2, "No such file or directory", "settings.toml")

    @router.get("/sleep")
    async def sleep(session: SessionDep) -> None:
        await session.execute(text("SELECT pg_sleep(1)"))

    @router.get("/direct")
    async def direct(database: DatabaseDep) -> dict[str, int]:
        async with database.session() as session:
            return {"one": (await session.scalar(text("SELECT 1"))) or 0}

    return AppBuilder(settings).without_middleware().with_database().with_routes(router).build()


async def create_tables(app: FastAPI) -> None:
    database: Database = app.state.database
    async with database.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name, {"service": "dbtest"}) or 0.0


def is_problem(response: httpx.Response, status: int) -> bool:
    return (
        response.status_code == status
        and response.headers["content-type"] == "application/problem+json"
        and response.json()["status"] == status
    )


async def test_session_commits_when_the_handler_succeeds(
    db_settings: SettingsFactory, make_client: Callable[..., Any]
) -> None:
    app = notes_app(db_settings())
    async with make_client(app) as client:
        await create_tables(app)
        created = await client.post("/notes/1")
        count = await client.get("/notes/count")
    assert created.status_code == 201
    assert count.json() == {"count": 1}


async def test_session_rolls_back_when_the_handler_raises(
    db_settings: SettingsFactory, make_client: Callable[..., Any]
) -> None:
    app = notes_app(db_settings())
    async with make_client(app) as client:
        await create_tables(app)
        refused = await client.post("/notes/1", params={"fail": True})
        count = await client.get("/notes/count")
    assert is_problem(refused, 409)
    assert count.json() == {"count": 0}


async def test_a_failing_commit_is_never_reported_as_success(
    db_settings: SettingsFactory, lenient_client: Callable[..., Any]
) -> None:
    app = notes_app(db_settings())
    async with lenient_client(app) as client:
        await create_tables(app)
        first = await client.post("/unflushed/7")
        duplicate = await client.post("/unflushed/7")
        count = await client.get("/notes/count")
    assert first.status_code == 201
    assert is_problem(duplicate, 500)
    assert "INSERT" not in duplicate.text
    assert "notes" not in duplicate.text
    assert count.json() == {"count": 1}


async def test_postgres_sessions_commit_and_roll_back(
    fresh_postgres_url: str, db_settings: SettingsFactory, make_client: Callable[..., Any]
) -> None:
    app = notes_app(db_settings(url=fresh_postgres_url))
    async with make_client(app) as client:
        await create_tables(app)
        await client.post("/notes/1")
        await client.post("/notes/2", params={"fail": True})
        count = await client.get("/notes/count")
    assert count.json() == {"count": 1}


async def test_unreachable_database_answers_503_problem(
    db_settings: SettingsFactory, closed_port: int, make_client: Callable[..., Any]
) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port}/app"
    app = notes_app(db_settings(url=url, connect_timeout_seconds=0.5))
    async with make_client(app) as client:
        response = await client.get("/notes/count")
        direct = await client.get("/direct")
    assert is_problem(response, 503)
    assert response.headers["retry-after"] == "1"
    assert str(closed_port) not in response.text
    assert "127.0.0.1" not in response.text
    # The same answer when a handler opens its own unit of work.
    assert is_problem(direct, 503)


async def test_exhausted_pool_answers_503_and_is_counted(
    db_settings: SettingsFactory, make_client: Callable[..., Any]
) -> None:
    settings = db_settings(pool_size=1, max_overflow=0, pool_timeout_seconds=0.05)
    app = notes_app(settings)
    before = metric("db_pool_timeouts_total")
    async with make_client(app) as client:
        await create_tables(app)
        database: Database = app.state.database
        async with database.engine.connect() as held:
            await held.execute(text("SELECT 1"))
            response = await client.get("/notes/count")
            direct = await client.get("/direct")
            ready = await client.get("/health/ready")
        after_release = await client.get("/notes/count")
    assert is_problem(response, 503)
    assert is_problem(direct, 503)
    assert ready.json()["failed"] == ["database"]
    assert metric("db_pool_timeouts_total") - before == 3
    assert after_release.status_code == 200


async def test_errors_unrelated_to_the_database_stay_500(
    db_settings: SettingsFactory, lenient_client: Callable[..., Any]
) -> None:
    app = notes_app(db_settings())
    async with lenient_client(app) as client:
        response = await client.get("/file")
    assert is_problem(response, 500)


async def test_a_database_outage_answers_503_and_recovery_needs_no_restart(
    postgres_proxy: tuple[Any, str], db_settings: SettingsFactory, make_client: Callable[..., Any]
) -> None:
    proxy, url = postgres_proxy
    app = notes_app(db_settings(url=url, connect_timeout_seconds=0.5))
    baseline = metric("db_pool_checked_out")
    async with make_client(app) as client:
        before = await client.get("/direct")
        await proxy.stop()
        during = await client.get("/direct")
        ready_during = await client.get("/health/ready")
        await proxy.start()
        after = await client.get("/direct")
    assert before.status_code == 200
    assert is_problem(during, 503)
    assert ready_during.json()["failed"] == ["database"]
    assert after.json() == {"one": 1}
    assert metric("db_pool_checked_out") == baseline


async def test_a_query_over_the_statement_timeout_answers_503(
    postgres_url: str, db_settings: SettingsFactory, make_client: Callable[..., Any]
) -> None:
    app = notes_app(db_settings(url=postgres_url, statement_timeout_ms=100))
    async with make_client(app) as client:
        response = await client.get("/sleep")
    assert is_problem(response, 503)
    assert "pg_sleep" not in response.text


async def test_a_sqlite_writer_blocked_past_busy_timeout_answers_503(
    db_settings: SettingsFactory, make_client: Callable[..., Any]
) -> None:
    app = notes_app(db_settings(sqlite_busy_timeout_ms=50))
    async with make_client(app) as client:
        await create_tables(app)
        database: Database = app.state.database
        async with database.engine.connect() as writer:
            await writer.exec_driver_sql("BEGIN IMMEDIATE")
            await writer.exec_driver_sql("INSERT INTO notes (id, body) VALUES (9, 'held')")
            blocked = await client.post("/notes/1")
            await writer.exec_driver_sql("ROLLBACK")
        unblocked = await client.post("/notes/1")
    assert is_problem(blocked, 503)
    assert unblocked.status_code == 201
