"""Alembic helpers: one migration history per service, run as its own step.

Migrations never run in the app's lifespan (several replicas would race);
a deploy runs them once, before the new pods, through `upgrade_to_head` or the
``alembic`` command. A service's ``migrations/env.py`` is then two lines::

    from chassis.database.migrations import run_migrations
    from orders.models import metadata

    run_migrations(metadata)

Alembic runs on a synchronous driver (``sqlite``, ``postgresql+psycopg``)
derived from the service's async URL by `sync_url`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import MetaData, create_engine, pool
from sqlalchemy.engine import make_url

from chassis.database.engine import ensure_sqlite_directory

if TYPE_CHECKING:
    from alembic.config import Config

_SYNC_DRIVERS = {
    "sqlite+aiosqlite": "sqlite",
    "postgresql+asyncpg": "postgresql+psycopg",
    "postgresql+psycopg_async": "postgresql+psycopg",
}


def sync_url(url: str) -> str:
    """The synchronous URL Alembic uses for the async `url` the app uses."""
    parsed = make_url(url)
    driver = _SYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        return url
    query = dict(parsed.query)
    if parsed.drivername == "postgresql+asyncpg" and "ssl" in query:
        # asyncpg spells libpq's sslmode "ssl".
        query["sslmode"] = query.pop("ssl")
    converted = parsed.set(drivername=driver, query=query)
    return converted.render_as_string(hide_password=False)


def alembic_config(script_location: str | Path, url: str) -> Config:
    """An Alembic `Config` for the history at `script_location`, migrating `url`."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("path_separator", "os")
    # ConfigParser interpolates '%', which URL-encoded passwords contain.
    config.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return config


def upgrade_to_head(script_location: str | Path, url: str, *, revision: str = "head") -> None:
    """Apply the migrations at `script_location` to `url` (blocking; use a thread from async)."""
    from alembic import command

    ensure_sqlite_directory(sync_url(url))
    command.upgrade(alembic_config(script_location, url), revision)


def run_migrations(target_metadata: MetaData, *, default_url: str | None = None) -> None:
    """Body of a service's ``env.py``: online or offline, as Alembic was invoked.

    The URL is the config's ``sqlalchemy.url`` (set by `alembic_config`), else
    `default_url` (typically the service settings' ``database_url``).
    """
    from alembic import context

    url = context.config.get_main_option("sqlalchemy.url") or (
        sync_url(default_url) if default_url else None
    )
    if not url:
        raise RuntimeError("no database URL: set sqlalchemy.url or pass default_url")
    if context.is_offline_mode():
        run_migrations_offline(target_metadata, url=url)
    else:
        run_migrations_online(target_metadata, url=url)


def run_migrations_offline(target_metadata: MetaData, *, url: str) -> None:
    """Emit the migration SQL without connecting (``alembic upgrade --sql``)."""
    from alembic import context

    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=_is_sqlite(url),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online(target_metadata: MetaData, *, url: str) -> None:
    """Connect to `url` and apply the migrations in one transaction."""
    from alembic import context

    ensure_sqlite_directory(url)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                # SQLite cannot ALTER most things; batch mode copies the table instead.
                render_as_batch=_is_sqlite(url),
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


def _is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"
