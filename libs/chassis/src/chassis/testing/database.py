"""Per-test isolation on a shared test database: everything a test commits is rolled back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from chassis.database import Database


@asynccontextmanager
async def rollback_database(
    engine: AsyncEngine, *, service: str = "test"
) -> AsyncIterator[Database]:
    """A `Database` whose sessions run inside one outer transaction that is rolled back.

    Sessions commit to a SAVEPOINT (``join_transaction_mode="create_savepoint"``),
    so the code under test commits as usual and the next test still starts clean.
    Put it on the app after start-up: ``app.state.database = database``.
    """
    async with engine.connect() as connection:
        transaction = await connection.begin()
        database = Database(engine, service=service)
        database.sessionmaker = async_sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        try:
            yield database
        finally:
            await transaction.rollback()
