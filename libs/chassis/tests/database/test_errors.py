"""Which database errors mean "unavailable, retry later" (503) and which are bugs (500)."""

from __future__ import annotations

import pytest
from sqlalchemy import exc as sa_exc

from chassis.database import is_unavailable_error


class DriverError(Exception):
    def __init__(self, *, sqlstate: str | None = None, sqlite_errorcode: int | None = None):
        super().__init__("driver says no")
        if sqlstate is not None:
            self.sqlstate = sqlstate
        if sqlite_errorcode is not None:
            self.sqlite_errorcode = sqlite_errorcode


def wrapped(orig: BaseException, *, invalidated: bool = False) -> sa_exc.DBAPIError:
    return sa_exc.DBAPIError("SELECT 1", {}, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    ("sqlstate", "unavailable"),
    [
        ("08006", True),  # connection failure
        ("57P01", True),  # admin shutdown
        ("57P03", True),  # cannot connect now (starting up)
        ("53300", True),  # too many connections
        ("57014", True),  # statement_timeout
        ("42P01", False),  # undefined table: a bug
        ("23505", False),  # unique violation: a conflict, not an outage
    ],
)
def test_postgres_sqlstates_are_classified(sqlstate: str, unavailable: bool) -> None:
    assert is_unavailable_error(wrapped(DriverError(sqlstate=sqlstate))) is unavailable


@pytest.mark.parametrize(
    ("code", "unavailable"),
    [(5, True), (517, True), (6, True), (14, True), (1, False), (19, False)],
)
def test_sqlite_result_codes_are_classified(code: int, unavailable: bool) -> None:
    assert is_unavailable_error(wrapped(DriverError(sqlite_errorcode=code))) is unavailable


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (wrapped(DriverError(), invalidated=True), True),
        (wrapped(DriverError()), False),
        (sa_exc.TimeoutError("QueuePool limit reached"), True),
        (ConnectionRefusedError(111, "refused"), True),
        (TimeoutError(), True),
        (OSError("Multiple exceptions: [Errno 111] ..., [Errno 99] ..."), True),
        (OSError(113, "No route to host"), True),
        (FileNotFoundError(2, "No such file"), False),
        (ValueError("bad"), False),
        (sa_exc.DBAPIError("SELECT 1", {}, ConnectionResetError(104, "reset")), True),
    ],
)
def test_connection_level_errors_are_unavailable(error: BaseException, unavailable: bool) -> None:
    assert is_unavailable_error(error) is unavailable
