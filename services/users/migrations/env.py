"""Alembic environment of the users service: the chassis runner over the service's tables.

The URL is the one Alembic was given (tests, `chassis.database.migrations.upgrade_to_head`),
else the service's own from ``USERS_DATABASE__URL`` / ``USERS_DATA_DIR``.
"""

from __future__ import annotations

import logging.config

from alembic import context

from chassis.database.migrations import run_migrations
from chassis.settings import load_settings
from users.models import metadata
from users.settings import MigrationSettings

if context.config.config_file_name is not None:
    logging.config.fileConfig(context.config.config_file_name, disable_existing_loggers=False)

run_migrations(metadata, default_url=load_settings(MigrationSettings).database_url)
