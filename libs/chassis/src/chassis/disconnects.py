"""A request whose client went away: the mark the error layer sets, the status others record.

A leaf module: the error layer marks the request, and the access log and the RED
metrics (which live in different packages) read the mark, without importing each
other.
"""

from __future__ import annotations

from chassis.types import Scope

#: The status logged and counted for a request its client abandoned (nginx's convention).
CLIENT_CLOSED_REQUEST = 499
_DISCONNECTED_KEY = "chassis.client_disconnected"


def mark_client_disconnected(scope: Scope) -> None:
    """Record in the request's state that its client went away before it was answered."""
    scope.setdefault("state", {})[_DISCONNECTED_KEY] = True


def client_disconnected(scope: Scope) -> bool:
    """Whether `mark_client_disconnected` was called for this request."""
    state = scope.get("state")
    return bool(state and state.get(_DISCONNECTED_KEY))
