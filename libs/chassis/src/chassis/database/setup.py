"""Builder step: the ``database`` resource, its readiness check and its error handler."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from chassis.database.errors import install_database_error_handler
from chassis.database.session import Database
from chassis.tracing import instrument_engine

if TYPE_CHECKING:
    from chassis.builder_protocol import Builder


def setup_database(builder: Builder) -> None:
    """Open the engine at start-up (lazily: no connection yet), dispose it at shutdown."""
    settings = builder.settings

    @asynccontextmanager
    async def database(_app: FastAPI) -> AsyncIterator[Database]:
        db = Database.from_settings(settings)
        # Tracing opens before every other resource, so this sees whether it is on.
        instrument_engine(db.engine)
        try:
            yield db
        finally:
            await db.dispose()

    builder.add_resource("database", database)
    builder.readiness.add("database", check_database)
    builder.configure_app(install_database_error_handler)


async def check_database(app: FastAPI) -> dict[str, Any]:
    database: Database = app.state.database
    return await database.ping()
