"""Model building blocks every service shares: stable constraint names, UTC timestamps.

Services own their models and their `MetaData`; `make_metadata` only fixes the
naming convention so that Alembic autogenerate produces the same constraint
names on SQLite and Postgres, run after run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import DateTime, MetaData, func
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def make_metadata(*, schema: str | None = None) -> MetaData:
    """A `MetaData` with the chassis naming convention (for a service's declarative base)."""
    return MetaData(naming_convention=NAMING_CONVENTION, schema=schema)


class ServiceBase:
    """Mixed in before `DeclarativeBase`, it makes a service's declarative base.

    ``class Base(ServiceBase, DeclarativeBase): ...`` (in the service's
    ``database.py``) gives that base its own `MetaData` with the chassis naming
    convention. The base cannot live in the chassis itself: a subclass of a
    shared base would share its registry, and the test suite imports every
    service in one process, so each service's Alembic metadata would hold the
    other services' tables too.
    """

    metadata: ClassVar[MetaData]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Only the service's base (a direct DeclarativeBase subclass) gets a new
        # MetaData, and before DeclarativeBase builds the registry from it; the
        # mapped classes below the base inherit that one.
        if DeclarativeBase in cls.__bases__:
            if cls.__mro__.index(ServiceBase) > cls.__mro__.index(DeclarativeBase):
                raise TypeError(f"{cls.__name__}: list ServiceBase before DeclarativeBase")
            if "metadata" not in cls.__dict__:
                cls.metadata = make_metadata()
        super().__init_subclass__(**kwargs)


def utc_now() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    SQLite has no timezone type and hands back naive values; this stores UTC and
    always returns an aware datetime, and refuses naive input rather than guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTCDateTime column; attach a tzinfo")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):  # pragma: no cover - drivers return datetimes
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class TimestampMixin:
    """``created_at`` / ``updated_at`` columns, set by the application in UTC."""

    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utc_now, server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(),
        default=utc_now,
        onupdate=utc_now,
        server_default=func.now(),
        nullable=False,
    )
