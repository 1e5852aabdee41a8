"""Tell "the database is unreachable" apart from "this query is wrong".

An unreachable or overloaded database is answered with 503 problem+json so that
clients and load balancers retry later; any other database error stays a 500
(a bug), and neither ever shows SQL or a host name to the client.
"""

from __future__ import annotations

import errno
import socket

import structlog
from fastapi import FastAPI, Request
from sqlalchemy import exc as sa_exc
from starlette.responses import Response

from chassis.errors import ServiceUnavailable, service_error_response

logger = structlog.get_logger("chassis.database")

#: Shown to clients; deliberately says nothing about hosts, drivers or SQL.
UNAVAILABLE_DETAIL = "The database is unavailable; retry later."

_NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.EHOSTDOWN,
        errno.EPIPE,
    }
)

# Postgres SQLSTATEs that mean "not now" rather than "never": connection
# exceptions (class 08), shutdown in progress, too many connections, and a
# query cancelled by statement_timeout.
_UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "57P")
_UNAVAILABLE_SQLSTATES = frozenset({"53300", "57014"})

# SQLite result codes for a database held by another writer or not openable.
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_CANTOPEN = 5, 6, 14


def is_unavailable_error(exc: BaseException) -> bool:
    """True when `exc` means the database cannot serve us now (retrying later may work)."""
    if isinstance(exc, sa_exc.TimeoutError):  # pool exhausted for pool_timeout
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        return _is_unavailable_driver_error(exc.orig)
    return _is_network_error(exc)


def _is_unavailable_driver_error(orig: BaseException | None) -> bool:
    if orig is None:
        return False
    if _is_network_error(orig) or _is_network_error(orig.__cause__):
        return True
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate in _UNAVAILABLE_SQLSTATES or sqlstate.startswith(
            _UNAVAILABLE_SQLSTATE_PREFIXES
        )
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        # Extended result codes keep the primary code in the low byte.
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_CANTOPEN)
    return False


def _is_network_error(exc: BaseException | None) -> bool:
    # asyncpg raises plain OSError subclasses when it cannot connect; only the
    # network ones count, so a handler's own FileNotFoundError stays a 500.
    if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror):
        return True
    if isinstance(exc, OSError):
        # asyncio joins failures over several addresses into one errno-less OSError.
        return exc.errno in _NETWORK_ERRNOS or str(exc).startswith("Multiple exceptions")
    return False


def unavailable(exc: BaseException) -> ServiceUnavailable:
    """The `ServiceUnavailable` to raise in place of `exc`, logged with its cause."""
    # The driver's message only: SQLAlchemy's own text would add the statement.
    cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    logger.warning("database_unavailable", error=type(exc).__name__, reason=str(cause))
    return ServiceUnavailable(UNAVAILABLE_DETAIL, headers={"Retry-After": "1"})


async def database_error_handler(request: Request, exc: Exception) -> Response:
    """503 for an unavailable database; anything else goes on to the generic 500 handler."""
    if not is_unavailable_error(exc):
        raise exc
    return service_error_response(request, unavailable(exc))


def install_database_error_handler(app: FastAPI) -> None:
    """Catch database errors raised outside `get_session` (e.g. `Database.session()` use)."""
    app.add_exception_handler(sa_exc.DBAPIError, database_error_handler)
    app.add_exception_handler(sa_exc.TimeoutError, database_error_handler)
