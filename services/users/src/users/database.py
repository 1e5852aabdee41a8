"""The declarative base of every users table (its own MetaData, chassis naming convention)."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from chassis.database import ServiceBase


class Base(ServiceBase, DeclarativeBase):
    """Every users model subclasses this; `users.models` collects them for Alembic."""
