"""Model helpers: stable constraint names and timezone-aware UTC timestamps everywhere."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, Integer, String, Table, select
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from chassis.database import (
    NAMING_CONVENTION,
    ServiceBase,
    TimestampMixin,
    UTCDateTime,
    create_engine_from_settings,
    make_metadata,
)
from chassis.settings import DatabaseSettings


class Base(ServiceBase, DeclarativeBase):
    pass


class Widget(TimestampMixin, Base):
    __tablename__ = "widgets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


def test_constraints_get_conventional_names() -> None:
    metadata = make_metadata()
    Table("parents", metadata, Column("id", Integer, primary_key=True))
    children = Table(
        "children",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("parent_id", ForeignKey("parents.id")),
        Column("code", String(10), unique=True),
        Column("rank", Integer),
        CheckConstraint("rank > 0", name="rank_positive"),
        Index(None, "rank"),
    )
    names = {constraint.name for constraint in children.constraints} | {
        index.name for index in children.indexes
    }
    assert names == {
        "pk_children",
        "fk_children_parent_id_parents",
        "uq_children_code",
        "ck_children_rank_positive",
        "ix_children_rank",
    }


def test_metadata_can_target_a_schema() -> None:
    assert make_metadata(schema="billing").schema == "billing"


@pytest.fixture(params=["sqlite", "postgres"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'widgets.sqlite3'}"
    else:
        url = request.getfixturevalue("fresh_postgres_url")
    engine = create_engine_from_settings(url, DatabaseSettings(), service="widgets")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()


async def test_timestamps_come_back_aware_in_utc(engine: AsyncEngine) -> None:
    seen = datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    async with AsyncSession(engine, expire_on_commit=False) as session:
        session.add(Widget(id=1, name="first", seen_at=seen))
        await session.commit()
    async with AsyncSession(engine) as session:
        widget = await session.scalar(select(Widget))
    assert widget is not None
    assert widget.seen_at == seen
    assert widget.seen_at.tzinfo is UTC
    assert widget.created_at.tzinfo is UTC
    assert abs(widget.created_at - datetime.now(UTC)) < timedelta(minutes=1)


async def test_updates_move_updated_at(engine: AsyncEngine) -> None:
    async with AsyncSession(engine, expire_on_commit=False) as session:
        widget = Widget(id=1, name="first")
        session.add(widget)
        await session.commit()
        created_at, first_update = widget.created_at, widget.updated_at
        widget.name = "renamed"
        await session.commit()
    assert widget.updated_at > first_update
    assert widget.created_at == created_at
    async with AsyncSession(engine) as session:
        reloaded = await session.scalar(select(Widget))
    assert reloaded is not None
    assert reloaded.seen_at is None
    assert reloaded.updated_at == widget.updated_at


async def test_naive_datetimes_are_refused(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as session:
        session.add(Widget(id=1, name="naive", seen_at=datetime(2024, 1, 1)))
        with pytest.raises(StatementError, match="naive datetime"):
            await session.commit()


class OtherServiceBase(ServiceBase, DeclarativeBase):
    pass


class Gadget(OtherServiceBase):
    __tablename__ = "gadgets"

    id: Mapped[int] = mapped_column(primary_key=True)


def test_each_service_base_has_its_own_metadata_with_the_naming_convention() -> None:
    assert Base.metadata is not OtherServiceBase.metadata
    assert set(Base.metadata.tables) == {"widgets"}
    assert set(OtherServiceBase.metadata.tables) == {"gadgets"}
    assert Base.metadata.naming_convention == NAMING_CONVENTION
    assert Widget.__table__.primary_key.name == "pk_widgets"
    assert Gadget.__table__.primary_key.name == "pk_gadgets"


def test_service_base_listed_after_declarative_base_is_refused() -> None:
    with pytest.raises(TypeError, match="list ServiceBase before DeclarativeBase"):

        class WrongOrder(DeclarativeBase, ServiceBase):  # type: ignore[misc]
            pass
