"""`savepoint`: a failing step is undone alone; the unit of work commits or rolls back whole."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import Insert, String, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from chassis.database import create_engine_from_settings, make_metadata, savepoint
from chassis.settings import DatabaseSettings


class Base(DeclarativeBase):
    metadata = make_metadata()


class Key(Base):
    __tablename__ = "keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20), unique=True)


class Refused(Exception):
    pass


def insert_key(key_id: int, name: str) -> Insert:
    return insert(Key).values(id=key_id, name=name)


@pytest.fixture(params=["sqlite", "postgres"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A chassis engine on SQLite (a file) or on an empty Postgres database, with `keys`."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'savepoint.sqlite3'}"
    else:
        url = request.getfixturevalue("fresh_postgres_url")
    engine = create_engine_from_settings(url, DatabaseSettings(), service="savepoint")
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def failing_step(session: AsyncSession, write: Callable[[], Awaitable[object]]) -> None:
    """A savepoint whose block writes, then raises `Refused`."""
    async with savepoint(session):
        await write()
        raise Refused


async def names(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessions() as session:
        return list((await session.scalars(select(Key.name).order_by(Key.id))).all())


async def test_a_block_that_raises_is_undone_and_the_work_before_it_is_committed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        session.add(Key(id=1, name="before"))  # pending: flushed as the savepoint begins
        with pytest.raises(Refused):
            await failing_step(session, lambda: session.execute(insert_key(2, "inside")))
        session.add(Key(id=3, name="after"))
        await session.commit()

    assert await names(sessions) == ["before", "after"]


async def test_a_unique_violation_inside_leaves_the_session_usable(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        session.add(Key(id=1, name="taken"))
        await session.commit()

    async with sessions() as session:
        session.add(Key(id=2, name="kept"))
        with pytest.raises(IntegrityError):
            async with savepoint(session):
                session.add(Key(id=3, name="taken"))
        # The object the block added left the session, so the commit does not retry it.
        count = await session.scalar(select(func.count()).select_from(Key))
        await session.commit()

    assert count == 2
    assert await names(sessions) == ["taken", "kept"]


async def test_a_released_savepoint_is_still_undone_by_the_session_rollback(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        # The savepoint is the first statement: on SQLite it must not start (and
        # then, on release, commit) the transaction itself.
        async with savepoint(session):
            session.add(Key(id=1, name="inside"))
        await session.rollback()

    assert await names(sessions) == []


async def test_a_released_savepoint_is_committed_with_the_session(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        async with savepoint(session):
            session.add(Key(id=1, name="inside"))
        await session.commit()

    assert await names(sessions) == ["inside"]


async def test_nested_savepoints_undo_only_the_inner_one(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        async with savepoint(session):
            session.add(Key(id=1, name="outer"))
            with pytest.raises(Refused):
                await failing_step(session, lambda: session.execute(insert_key(2, "inner")))
            session.add(Key(id=3, name="outer-again"))
        await session.commit()

    assert await names(sessions) == ["outer", "outer-again"]


async def test_on_postgres_a_rolled_back_savepoint_releases_its_row_locks(
    fresh_postgres_url: str,
) -> None:
    engine = create_engine_from_settings(fresh_postgres_url, DatabaseSettings(), service="locks")
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def update_elsewhere(name: str) -> None:
        async with sessions() as other:
            # A wait for another transaction's row lock fails after 1 s instead of hanging.
            await other.execute(text("SET LOCAL lock_timeout = '1s'"))
            await other.execute(update(Key).values(name=name))
            await other.commit()

    try:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        async with sessions() as session:
            session.add(Key(id=1, name="row"))
            await session.commit()

        async with sessions() as holder:
            with pytest.raises(Refused):
                await failing_step(
                    holder, lambda: holder.execute(update(Key).values(name="undone"))
                )
            await update_elsewhere("free")  # holder's transaction is still open
            await holder.execute(update(Key).values(name="held"))
            with pytest.raises(DBAPIError, match="lock timeout"):
                await update_elsewhere("blocked")
            await holder.rollback()

        assert await names(sessions) == ["free"]
    finally:
        await engine.dispose()
