"""Tokens passed in a query string never reach the server's log lines."""

from __future__ import annotations

import logging

import pytest

from gateway.logging import QueryTokenFilter, redact_query_tokens


def test_a_query_token_in_a_log_line_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    redact_query_tokens()
    redact_query_tokens()
    server_logger = logging.getLogger("uvicorn.error")

    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        server_logger.info(
            '%s - "WebSocket %s" [accepted]', "1.2.3.4", "/ws?x=1&access_token=s3cr3t"
        )
        server_logger.info("nothing to hide")

    assert "s3cr3t" not in caplog.text
    assert "/ws?x=1&access_token=[REDACTED]" in caplog.text
    assert "nothing to hide" in caplog.text
    assert sum(isinstance(f, QueryTokenFilter) for f in server_logger.filters) == 1
