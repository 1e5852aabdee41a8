"""Alembic helpers: URL derivation, and a real migration history applied to SQLite and Postgres."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from chassis.database.migrations import alembic_config, sync_url, upgrade_to_head

ENV_PY = """
import os

import sqlalchemy as sa

from chassis.database.migrations import run_migrations

metadata = sa.MetaData()
run_migrations(metadata, default_url=os.environ.get("MIGRATION_TEST_URL"))
"""

FIRST_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "widgets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("widgets")
"""


@pytest.fixture
def script_location(tmp_path: Path) -> Path:
    """A one-revision Alembic history whose env.py is the chassis helper."""
    location = tmp_path / "migrations"
    (location / "versions").mkdir(parents=True)
    (location / "env.py").write_text(textwrap.dedent(ENV_PY))
    (location / "versions" / "0001_widgets.py").write_text(textwrap.dedent(FIRST_REVISION))
    return location


def table_names(url: str) -> set[str]:
    engine = sa.create_engine(sync_url(url), poolclass=sa.pool.NullPool)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("async_url", "expected"),
    [
        ("sqlite+aiosqlite:///.data/users.sqlite3", "sqlite:///.data/users.sqlite3"),
        (
            "postgresql+asyncpg://app:s3cr%40t@db:5432/orders",
            "postgresql+psycopg://app:s3cr%40t@db:5432/orders",
        ),
        (
            "postgresql+asyncpg://app@db/orders?ssl=require",
            "postgresql+psycopg://app@db/orders?sslmode=require",
        ),
        ("postgresql+psycopg_async://app@db/orders", "postgresql+psycopg://app@db/orders"),
        ("sqlite:///plain.db", "sqlite:///plain.db"),
    ],
)
def test_sync_url_maps_async_drivers_to_sync_ones(async_url: str, expected: str) -> None:
    assert sync_url(async_url) == expected


def test_config_keeps_percent_encoded_passwords_intact(script_location: Path) -> None:
    config = alembic_config(script_location, "postgresql+asyncpg://app:p%25ss@db/orders")
    assert config.get_main_option("sqlalchemy.url") == "postgresql+psycopg://app:p%25ss@db/orders"
    assert config.get_main_option("script_location") == str(script_location)


async def test_upgrade_to_head_creates_tables_on_sqlite(
    script_location: Path, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'new' / 'app.sqlite3'}"
    await asyncio.to_thread(upgrade_to_head, script_location, url)
    assert table_names(url) == {"alembic_version", "widgets"}


async def test_upgrade_to_head_creates_tables_on_postgres(
    script_location: Path, fresh_postgres_url: str
) -> None:
    await asyncio.to_thread(upgrade_to_head, script_location, fresh_postgres_url)
    await asyncio.to_thread(upgrade_to_head, script_location, fresh_postgres_url)  # idempotent
    assert table_names(fresh_postgres_url) == {"alembic_version", "widgets"}


def test_offline_mode_prints_the_sql(
    script_location: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = alembic_config(script_location, "postgresql+asyncpg://app@db/orders")
    command.upgrade(config, "head", sql=True)
    output = capsys.readouterr().out
    assert "CREATE TABLE widgets" in output
    assert "INSERT INTO alembic_version" in output


def test_env_falls_back_to_the_default_url(
    script_location: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fallback.sqlite3'}"
    monkeypatch.setenv("MIGRATION_TEST_URL", url)
    config = Config()
    config.set_main_option("script_location", str(script_location))
    command.upgrade(config, "head")
    assert table_names(url) == {"alembic_version", "widgets"}


def test_env_without_any_url_refuses_to_guess(script_location: Path) -> None:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    with pytest.raises(RuntimeError, match="no database URL"):
        command.upgrade(config, "head")
