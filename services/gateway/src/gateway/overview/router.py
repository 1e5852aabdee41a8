"""`GET /api/v1/me/overview`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from chassis.openapi import problem_statuses
from chassis.types import Headers
from gateway.deps import CurrentUser, OrdersClient, SettingsDep, UsersClient
from gateway.overview.schemas import Overview
from gateway.overview.service import ProfileRefused, build_overview
from gateway.proxy.headers import forwarding_headers

router = APIRouter(prefix="/me", tags=["overview"])


@router.get(
    "/overview",
    response_model=Overview,
    responses=problem_statuses(401, 429, 502, 503, 504),
)
async def get_overview(
    request: Request,
    _principal: CurrentUser,
    users: UsersClient,
    orders: OrdersClient,
    settings: SettingsDep,
) -> Overview | Response:
    """The caller's profile and most recent orders; orders may be `unavailable` (still 200)."""
    headers: Headers = [
        (b"authorization", request.headers["authorization"].encode("latin-1")),
        *forwarding_headers(request.scope),
    ]
    try:
        return await build_overview(
            users=users,
            orders=orders,
            headers=headers,
            recent_orders=settings.overview.recent_orders,
            orders_timeout_seconds=settings.overview.orders_timeout_seconds,
        )
    except ProfileRefused as refused:
        answer = refused.response
        return Response(
            answer.content,
            status_code=answer.status_code,
            media_type=answer.headers.get("content-type"),
        )
