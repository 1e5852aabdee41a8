"""SQLAlchemy async database access: engine factory, sessions, builder step, model helpers.

Alembic helpers live in `chassis.database.migrations` so that the app process
does not import Alembic.
"""

from chassis.database.engine import create_engine_from_settings, ensure_sqlite_directory
from chassis.database.errors import install_database_error_handler, is_unavailable_error
from chassis.database.metadata import (
    NAMING_CONVENTION,
    ServiceBase,
    TimestampMixin,
    UTCDateTime,
    make_metadata,
    utc_now,
)
from chassis.database.savepoint import savepoint
from chassis.database.session import (
    Database,
    DatabaseDep,
    SessionDep,
    get_database,
    get_session,
)
from chassis.database.setup import check_database, setup_database

__all__ = [
    "NAMING_CONVENTION",
    "Database",
    "DatabaseDep",
    "ServiceBase",
    "SessionDep",
    "TimestampMixin",
    "UTCDateTime",
    "check_database",
    "create_engine_from_settings",
    "ensure_sqlite_directory",
    "get_database",
    "get_session",
    "install_database_error_handler",
    "is_unavailable_error",
    "make_metadata",
    "savepoint",
    "setup_database",
    "utc_now",
]
