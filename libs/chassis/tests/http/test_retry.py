"""The retry policy's rules on their own: what is idempotent, what is retried, Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from chassis.http import DeadlineExceeded, is_idempotent
from chassis.http.retry import retry_after_seconds, retry_reason

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("method", "marked", "expected"),
    [
        ("GET", None, True),
        ("head", None, True),
        ("OPTIONS", None, True),
        ("PUT", None, True),
        ("DELETE", None, True),
        ("POST", None, False),
        ("PATCH", None, False),
        ("POST", True, True),
        ("GET", False, False),
    ],
)
def test_idempotency_follows_the_method_unless_the_caller_says(method, marked, expected):
    assert is_idempotent(method, marked) is expected


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        (httpx.Response(503), "status_503"),
        (httpx.Response(502), "status_502"),
        (httpx.Response(504), "status_504"),
        (httpx.Response(500), None),
        (httpx.Response(429), None),
        (httpx.ConnectError("refused"), "connect_error"),
        (httpx.ConnectTimeout("slow"), "timeout"),
        (httpx.ReadTimeout("slow"), "timeout"),
        (httpx.PoolTimeout("full"), "timeout"),
        (httpx.RemoteProtocolError("dropped"), "protocol_error"),
        (httpx.WriteTimeout("slow"), None),
        (httpx.ReadError("reset"), None),
        (DeadlineExceeded("late"), None),
        (ValueError("bug"), None),
    ],
)
def test_only_transient_failures_are_worth_a_retry(outcome, reason):
    assert retry_reason(outcome) == reason


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),
        ("Wed, 01 Jan 2025 12:00:30", None),
        ("soon", None),
        ("", None),
    ],
)
def test_retry_after_is_read_as_seconds_or_http_date(header, expected):
    response = httpx.Response(503, headers={"Retry-After": header})

    assert retry_after_seconds(response, now=NOW) == expected


def test_retry_after_is_only_taken_from_a_503():
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "5"})) is None
