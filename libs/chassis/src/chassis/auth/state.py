"""Where a request's authentication outcome is kept, so a token is verified once.

The outcome (a `Principal` or the refusal) lives under a chassis key of the
ASGI scope, which is per request in every server. The principal is also put
in ``scope["state"]["principal"]`` for other layers (the rate limiter keys by
it; handlers see ``request.state.principal``). Lifespan state may be one dict
shared by all requests (asgi-lifespan does that), so `isolate_state` gives a
request its own copy before anything is written into it.
"""

from __future__ import annotations

from typing import Any

from chassis.auth.principal import Principal
from chassis.errors import ServiceError
from chassis.types import Scope

#: ``scope["state"][PRINCIPAL_STATE_KEY]`` is the verified `Principal`, when there is one.
PRINCIPAL_STATE_KEY = "principal"
_OUTCOME_KEY = "chassis.auth.outcome"

Outcome = Principal | ServiceError


def isolate_state(scope: Scope) -> dict[str, Any]:
    """Give this request its own state dict, without a principal left by another request."""
    shared: dict[str, Any] = scope.get("state") or {}
    state = {name: value for name, value in shared.items() if name != PRINCIPAL_STATE_KEY}
    scope["state"] = state
    return state


def record_outcome(scope: Scope, outcome: Outcome) -> None:
    scope[_OUTCOME_KEY] = outcome
    if isinstance(outcome, Principal):
        state: dict[str, Any] = scope.setdefault("state", {})
        state[PRINCIPAL_STATE_KEY] = outcome


def recorded_outcome(scope: Scope) -> Outcome | None:
    outcome: Outcome | None = scope.get(_OUTCOME_KEY)
    return outcome
