"""The route template a request matched, for bounded metric labels, log fields and span names."""

from __future__ import annotations

from chassis.types import Scope

#: The one label every request that matched no route shares (bounded cardinality).
UNMATCHED_ROUTE = "<unmatched>"


def route_template(scope: Scope) -> str | None:
    """``/api/v1/orders/{order_id}`` for a request to ``/api/v1/orders/42``; None if unmatched.

    Since FastAPI 0.165 an included router keeps its own routes, so
    ``scope["route"].path`` lacks the prefixes it was included under; FastAPI
    records the full template in its per-request "effective route context".
    Without it (plain Starlette, older FastAPI) the matched route's path is used.
    """
    fastapi_scope = scope.get("fastapi")
    if fastapi_scope:
        effective = fastapi_scope.get("effective_route_context")
        template = getattr(effective, "path_format", None)
        if template:
            return str(template)
    path = getattr(scope.get("route"), "path", None)
    return str(path) if path else None
