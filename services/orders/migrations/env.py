"""Alembic environment of the orders service: the chassis runner over the orders metadata."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context

from chassis.database.migrations import run_migrations
from orders.models import metadata
from orders.settings import get_settings

if context.config.config_file_name is not None:
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)


def _default_url() -> str | None:
    # Only when no URL was passed in (the `alembic` command): read the service settings.
    if context.config.get_main_option("sqlalchemy.url"):
        return None
    return get_settings().database_url


run_migrations(metadata, default_url=_default_url())
