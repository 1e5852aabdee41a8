"""Async engine factory: SQLite (aiosqlite) embedded by default, Postgres (asyncpg) by URL.

Each backend gets what it needs to behave in production: SQLite runs in WAL mode
with a busy timeout and enforced foreign keys on every connection, and its
savepoints sit inside a transaction (see `_begin_before_savepoint`); Postgres gets
a bounded pool, a pre-ping of connections that sat idle, a connect timeout, a
server-side ``statement_timeout`` and the service name as ``application_name``.
Both report their pool to Prometheus.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from chassis.metrics.registry import DB_POOL_CHECKED_OUT, DB_POOL_SIZE
from chassis.settings import DatabaseSettings

# Set on a pool record while our gauge counts it, so that a check-in SQLAlchemy
# emits for a connection that never completed check-out is not subtracted.
_COUNTED = "chassis_checked_out"
# On a pool record's connection info: when the connection last went back to the pool.
_RETURNED_AT = "chassis_returned_at"


def create_engine_from_settings(
    url: str, settings: DatabaseSettings, *, service: str
) -> AsyncEngine:
    """An `AsyncEngine` for `url`, configured for its backend from `settings`."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = _sqlite_engine(parsed, settings)
    elif backend == "postgresql":
        engine = _postgres_engine(parsed, settings, service=service)
    else:
        raise ValueError(
            f"unsupported database backend {backend!r}: use sqlite+aiosqlite or postgresql+asyncpg"
        )
    _instrument_pool(engine, service=service, pool_size=_pool_size(engine))
    return engine


def is_memory_sqlite(url: URL) -> bool:
    database = url.database or ""
    return database in ("", ":memory:") or "mode=memory" in database


def ensure_sqlite_directory(url: str | URL) -> None:
    """Create the directory of a SQLite file URL; a no-op for anything else."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() != "sqlite" or is_memory_sqlite(parsed):
        return
    database = parsed.database or ""
    if database.startswith("file:"):
        database = database.removeprefix("file:").split("?", 1)[0]
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _sqlite_engine(url: URL, settings: DatabaseSettings) -> AsyncEngine:
    options: dict[str, Any] = {"echo": settings.echo, "hide_parameters": True}
    if not is_memory_sqlite(url):
        ensure_sqlite_directory(url)
        # A file database gets a real queue pool; an in-memory one must keep its
        # single connection (SQLAlchemy picks StaticPool), so no pool options.
        options.update(
            pool_size=settings.pool_size,
            max_overflow=settings.max_overflow,
            pool_timeout=settings.pool_timeout_seconds,
            pool_recycle=settings.pool_recycle_seconds,
        )
    engine = create_async_engine(url, **options)
    busy_timeout_ms = int(settings.sqlite_busy_timeout_ms)

    def set_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # WAL lets readers run while one writer commits; busy_timeout makes a
            # writer wait for the lock instead of failing at once.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    event.listen(engine.sync_engine, "connect", set_pragmas)
    event.listen(engine.sync_engine, "savepoint", _begin_before_savepoint)
    return engine


def _begin_before_savepoint(connection: Connection, _name: str) -> None:
    """Open the SQLite transaction before a SAVEPOINT that would otherwise open it.

    The sqlite3 module (under aiosqlite) sends BEGIN only before a write. A
    SAVEPOINT sent first starts the transaction itself, and its RELEASE then
    commits everything: the session's later rollback would undo nothing.
    """
    driver = connection.connection.driver_connection  # the aiosqlite connection
    if driver is not None and not driver.in_transaction:
        connection.exec_driver_sql("BEGIN")


def _postgres_engine(url: URL, settings: DatabaseSettings, *, service: str) -> AsyncEngine:
    if url.drivername != "postgresql+asyncpg":
        raise ValueError(f"unsupported Postgres driver {url.drivername!r}: use postgresql+asyncpg")
    server_settings = {"application_name": service}
    if settings.statement_timeout_ms:
        server_settings["statement_timeout"] = str(settings.statement_timeout_ms)
    engine = create_async_engine(
        url,
        echo=settings.echo,
        # Bound values (password hashes, tokens) must not reach logs via error text.
        hide_parameters=True,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout_seconds,
        pool_recycle=settings.pool_recycle_seconds,
        # With an idle threshold the ping is ours (_pre_ping_when_idle), not SQLAlchemy's.
        pool_pre_ping=settings.pool_pre_ping and not settings.pool_pre_ping_idle_seconds,
        connect_args={
            "timeout": settings.connect_timeout_seconds,
            "server_settings": server_settings,
        },
    )
    event.listen(engine.sync_engine, "do_connect", _connect_errors_as_dbapi_errors)
    if settings.pool_pre_ping and settings.pool_pre_ping_idle_seconds:
        _pre_ping_when_idle(engine, idle_seconds=settings.pool_pre_ping_idle_seconds)
    return engine


def _pre_ping_when_idle(engine: AsyncEngine, *, idle_seconds: float) -> None:
    """Ping a pooled connection at check-out only if it sat idle for `idle_seconds`.

    SQLAlchemy's ``pool_pre_ping`` pings on every check-out, and asyncpg's ping
    is three round trips (BEGIN, an empty query, ROLLBACK): more than the
    query of a typical GET. A connection checked in a moment ago was working
    then, so under load nothing is pinged; one idle long enough to have been
    cut by a database restart or a proxy timeout is. A failed ping raises
    `DisconnectionError`, on which the pool discards the connection and checks
    out another (SQLAlchemy's documented pessimistic-disconnect hook). A
    connection that breaks within the window fails its query instead; that
    error invalidates every connection the pool opened before it, so one
    request sees the restart, not one per pooled connection.
    """

    def on_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry | None) -> None:
        if record is not None and record.dbapi_connection is not None:
            record.info[_RETURNED_AT] = time.monotonic()

    def on_checkout(
        dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        # A new connection has no check-in time: it was opened just now, nothing to test.
        returned_at = record.info.get(_RETURNED_AT)
        if returned_at is None or time.monotonic() - returned_at < idle_seconds:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # any failure means the connection is unusable
            raise sa_exc.DisconnectionError(f"pre-ping failed: {exc}") from exc
        if not alive:
            raise sa_exc.DisconnectionError("pre-ping failed")

    event.listen(engine.sync_engine, "checkin", on_checkin)
    event.listen(engine.sync_engine, "checkout", on_checkout)


def _connect_errors_as_dbapi_errors(
    dialect: Dialect, _record: ConnectionPoolEntry, cargs: list[Any], cparams: dict[str, Any]
) -> Any:
    """Connect, turning asyncpg's bare socket errors into a DBAPI OperationalError.

    psycopg reports "connection refused" as OperationalError; asyncpg raises
    OSError or TimeoutError, which SQLAlchemy passes through unwrapped. Wrapping
    it here means every caller sees `sqlalchemy.exc.OperationalError` for an
    unreachable database, with the socket error as its cause.
    """
    try:
        return dialect.connect(*cargs, **cparams)
    except OSError as exc:  # TimeoutError and ConnectionError included
        raise dialect.loaded_dbapi.OperationalError(
            f"cannot connect to the database: {exc}", exc
        ) from exc


def _pool_size(engine: AsyncEngine) -> int:
    size = getattr(engine.sync_engine.pool, "size", None)
    return int(size()) if callable(size) else 1


def _instrument_pool(engine: AsyncEngine, *, service: str, pool_size: int) -> None:
    checked_out = DB_POOL_CHECKED_OUT.labels(service)
    DB_POOL_SIZE.labels(service).set(pool_size)

    def on_checkout(
        _dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        info = record.record_info
        if info is not None and not info.get(_COUNTED):
            info[_COUNTED] = True
            checked_out.inc()

    def on_release(_dbapi_connection: Any, record: ConnectionPoolEntry | None) -> None:
        info = record.record_info if record is not None else None
        if info is not None and info.pop(_COUNTED, False):
            checked_out.dec()

    event.listen(engine.sync_engine, "checkout", on_checkout)
    event.listen(engine.sync_engine, "checkin", on_release)
    # A detached connection never comes back through check-in.
    event.listen(engine.sync_engine, "detach", on_release)
