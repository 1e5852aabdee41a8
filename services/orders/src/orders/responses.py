"""OpenAPI descriptions of the problem+json answers routes declare, so the document is honest.

The body is the chassis's RFC 9457 problem; some carry more members (``errors`` on
a 422, ``from_status``/``to_status`` on an illegal move, ``missing_scopes`` on a 403).
"""

from __future__ import annotations

from typing import Any

Responses = dict[int | str, dict[str, Any]]

PROBLEM: dict[str, Any] = {
    "content": {
        "application/problem+json": {
            "schema": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "instance": {"type": "string"},
                    "request_id": {"type": ["string", "null"]},
                    "trace_id": {"type": ["string", "null"]},
                },
                "required": ["type", "title", "status"],
                "additionalProperties": True,
            }
        }
    }
}


def problem(description: str) -> dict[str, Any]:
    return {"description": description, **PROBLEM}


AUTH_REQUIRED: Responses = {
    401: problem("Missing or invalid access token."),
    403: problem("The token lacks the required scope or kind."),
}
