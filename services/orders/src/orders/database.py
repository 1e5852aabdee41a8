"""The declarative base every orders table uses (chassis naming convention)."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from chassis.database import make_metadata


class Base(DeclarativeBase):
    metadata = make_metadata()
