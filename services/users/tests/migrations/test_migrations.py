"""The Alembic history: it matches the models, runs both ways, and needs only a database URL."""

from __future__ import annotations

import configparser
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from chassis.database.migrations import alembic_config, sync_url, upgrade_to_head
from users.models import metadata

SERVICE = Path(__file__).resolve().parents[2]
MIGRATIONS = SERVICE / "migrations"
TABLES = {"users", "refresh_tokens", "signing_keys"}


def sqlite_tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows} - {"alembic_version"}


def test_the_migrated_schema_matches_the_models(migrated_database_url: str) -> None:
    engine = create_engine(sync_url(migrated_database_url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()

    assert differences == []


def test_the_history_upgrades_and_downgrades_on_sqlite(tmp_path: Path) -> None:
    database = tmp_path / "users.sqlite3"
    url = f"sqlite+aiosqlite:///{database}"

    upgrade_to_head(MIGRATIONS, url)
    assert sqlite_tables(database) == TABLES
    command.downgrade(alembic_config(MIGRATIONS, url), "base")
    assert sqlite_tables(database) == set()


def test_alembic_ini_leaves_the_url_to_the_environment() -> None:
    parser = configparser.ConfigParser()
    parser.read(SERVICE / "alembic.ini")

    assert not parser.has_option("alembic", "sqlalchemy.url")


def test_the_alembic_command_migrates_the_configured_database(tmp_path: Path) -> None:
    env = {**os.environ, "USERS_DATA_DIR": str(tmp_path / "data")}
    # No signing key and production secrets are needed just to migrate.
    env["USERS_ENVIRONMENT"] = "production"

    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(SERVICE / "alembic.ini"), "upgrade", "head"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )

    assert sqlite_tables(tmp_path / "data" / "users.sqlite3") == TABLES
