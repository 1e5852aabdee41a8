"""Keep WebSocket tokens out of server logs.

Browsers pass the token of ``/ws/events`` as ``?access_token=``, and uvicorn
logs every WebSocket handshake with its query string. The chassis redacts
sensitive *keys* in structured lines, but this token sits inside a message
text, so a filter on uvicorn's logger rewrites it.
"""

from __future__ import annotations

import logging
import re

_QUERY_TOKEN = re.compile(r"((?:access_token|token)=)[^&\s\"']+", re.IGNORECASE)
REDACTED = "[REDACTED]"
SERVER_LOGGERS = ("uvicorn.error", "uvicorn.access")


class QueryTokenFilter(logging.Filter):
    """Replaces ``access_token=<value>`` in a record's message with a placeholder."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message.lower():
            record.msg = _QUERY_TOKEN.sub(rf"\g<1>{REDACTED}", message)
            record.args = None
        return True


def redact_query_tokens() -> None:
    """Install the filter on the server's loggers (once, however often it is called)."""
    for name in SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        if not any(isinstance(existing, QueryTokenFilter) for existing in server_logger.filters):
            server_logger.addFilter(QueryTokenFilter())
