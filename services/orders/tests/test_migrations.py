"""The Alembic history: it builds exactly the models' schema, and it can be undone."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from chassis.database.migrations import alembic_config, sync_url, upgrade_to_head
from orders.models import metadata

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
TABLES = {"orders", "order_items", "idempotency_keys", "outbox", "alembic_version"}


def _schema_differences(url: str) -> list[object]:
    engine = sa.create_engine(sync_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(sync_url(url), poolclass=sa.pool.NullPool)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_the_migrated_postgres_schema_matches_the_models(migrated_database_url: str) -> None:
    assert _tables(migrated_database_url) == TABLES
    assert _schema_differences(migrated_database_url) == []


def test_the_history_applies_to_sqlite_and_downgrades_to_nothing(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'orders.sqlite3'}"

    upgrade_to_head(MIGRATIONS, url)
    assert _tables(url) == TABLES
    assert _schema_differences(url) == []

    command.downgrade(alembic_config(MIGRATIONS, url), "base")
    assert _tables(url) == {"alembic_version"}
