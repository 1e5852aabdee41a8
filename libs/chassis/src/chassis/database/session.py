"""The `Database` resource and the request-scoped session dependency.

Only the session scope commits: a handler adds and flushes, and the dependency
commits when the handler returns, or rolls back when it raises. Database
outages surface as 503 problem+json, never as a 500 with a traceback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Annotated, Any

from fastapi import Depends
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from chassis.database.engine import create_engine_from_settings
from chassis.database.errors import is_unavailable_error, unavailable
from chassis.metrics.registry import DB_POOL_TIMEOUTS
from chassis.settings import BaseServiceSettings


class Database:
    """One engine and its session factory; lives on ``app.state.database``."""

    def __init__(self, engine: AsyncEngine, *, service: str) -> None:
        self.engine = engine
        self.service = service
        self.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: BaseServiceSettings) -> Database:
        engine = create_engine_from_settings(
            settings.database_url, settings.database, service=settings.service_name
        )
        return cls(engine, service=settings.service_name)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: committed when the block ends, rolled back if it raises."""
        session = self.sessionmaker()
        try:
            yield session
            await session.commit()
        except Exception as exc:
            if isinstance(exc, sa_exc.TimeoutError):
                DB_POOL_TIMEOUTS.labels(self.service).inc()
            # A broken connection may refuse the rollback too; the first error matters.
            with suppress(Exception):
                await session.rollback()
            raise
        finally:
            await session.close()

    async def ping(self) -> dict[str, Any]:
        """Run ``SELECT 1``; raise if the database cannot answer."""
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except sa_exc.TimeoutError:
            DB_POOL_TIMEOUTS.labels(self.service).inc()
            raise
        pool = self.engine.sync_engine.pool
        details: dict[str, Any] = {"dialect": self.engine.dialect.name}
        checked_out = getattr(pool, "checkedout", None)
        if callable(checked_out):
            details["pool_checked_out"] = checked_out()
        return details

    async def dispose(self) -> None:
        await self.engine.dispose()


async def get_database(connection: HTTPConnection) -> Database:
    database: Database = connection.app.state.database
    return database


async def get_session(connection: HTTPConnection) -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: a session committed after the handler, rolled back on error.

    Use it through `SessionDep`, which gives it function scope; a bare
    ``Depends(get_session)`` would commit after the response had been sent.
    """
    database: Database = connection.app.state.database
    async with _unavailable_as_503(), database.session() as session:
        yield session


@asynccontextmanager
async def _unavailable_as_503() -> AsyncIterator[None]:
    try:
        yield
    except Exception as exc:
        if is_unavailable_error(exc):
            raise unavailable(exc) from exc
        raise


DatabaseDep = Annotated[Database, Depends(get_database)]
# scope="function": commit before the response is sent. With the default
# (request) scope the commit would run after a 201 had already gone out.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
