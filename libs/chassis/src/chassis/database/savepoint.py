"""Savepoints: a part of the unit of work that can fail and be undone on its own.

Only the session dependency commits or rolls back the whole unit of work. A
service that expects one step to fail (a unique key already taken) runs that
step in a savepoint and handles the error; the rest of the request goes on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession


@asynccontextmanager
async def savepoint(session: AsyncSession) -> AsyncIterator[None]:
    """Run the block in a SAVEPOINT: released when it ends, rolled back alone if it raises.

    What the session holds is flushed before the SAVEPOINT, so it is kept
    whatever happens inside. The block's own changes are flushed when it
    ends; if it raises, they are undone, the objects it added leave the
    session, and the error propagates for the caller to handle. Nothing is
    committed here: the session's owner still commits or rolls back.
    On Postgres, row locks taken inside are released by the rollback too.
    """
    async with session.begin_nested():
        yield
