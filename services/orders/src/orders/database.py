"""The declarative base of every orders table (its own MetaData, chassis naming convention)."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from chassis.database import ServiceBase


class Base(ServiceBase, DeclarativeBase):
    """Every orders model subclasses this; `orders.models` collects them for Alembic."""
