"""The pytest plugin: hermetic env, isolated Postgres per test, a clean Redis db per test."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Integer, String, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from chassis.database import make_metadata


class Base(DeclarativeBase):
    metadata = make_metadata()


class Row(Base):
    __tablename__ = "plugin_rows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(20))


@pytest.fixture
async def table(postgres_engine: AsyncEngine) -> None:
    async with postgres_engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)


def test_service_env_vars_are_stripped_and_cwd_is_a_temp_dir(
    hermetic_env: Path,
) -> None:
    assert not any(name.startswith(("USERS_", "ORDERS_", "OTEL_")) for name in os.environ)
    assert Path.cwd() == hermetic_env


def test_a_shell_export_does_not_reach_a_service_test(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        """
        import os

        def test_env():
            assert "ORDERS_DATABASE__URL" not in os.environ
            assert os.environ["UNRELATED_VAR"] == "kept"
        """
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ORDERS_DATABASE__URL", "postgresql://leaked")
        patch.setenv("UNRELATED_VAR", "kept")
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("label", ["first", "second"])
async def test_commits_are_rolled_back_between_tests(
    table: None, postgres_database: Any, label: str
) -> None:
    async with postgres_database.session() as session:
        assert (await session.scalars(select(Row))).all() == []
        session.add(Row(label=label))
    # Committed (to a savepoint): visible to the next unit of work in this test.
    async with postgres_database.session() as session:
        assert [row.label for row in await session.scalars(select(Row))] == [label]


async def test_postgres_url_is_a_database_of_this_session(postgres_engine: AsyncEngine) -> None:
    async with postgres_engine.connect() as conn:
        name = (await conn.execute(text("select current_database()"))).scalar_one()
    assert name.startswith("chassis_test_")


@pytest.mark.parametrize("round_", [1, 2])
async def test_redis_db_is_empty_for_each_test(redis_url: str, round_: int) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(redis_url)
    try:
        assert await client.dbsize() == 0
        await client.set(f"key-{round_}", b"x")
    finally:
        await client.aclose()
