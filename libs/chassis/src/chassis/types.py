"""ASGI type aliases shared by every chassis middleware."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

Headers = list[tuple[bytes, bytes]]

__all__ = ["ASGIApp", "Headers", "Message", "Receive", "Scope", "Send"]
