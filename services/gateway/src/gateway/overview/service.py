"""Fetch the profile and the recent orders at the same time; the orders part may fail alone.

The profile is the point of the call: when users cannot answer, the overview
fails with users' own answer (or the chassis 503/504). Orders are extra: an
error, a bad answer, an open breaker or a reply later than the orders budget
gives ``{"status": "unavailable"}`` and the overview is still a 200.
"""

from __future__ import annotations

import asyncio

import httpx
import structlog
from pydantic import ValidationError

from chassis.errors import ServiceError
from chassis.http import UpstreamBadGateway, UpstreamClient
from chassis.types import Headers
from contracts.orders import OrderPage
from contracts.users import UserRead
from gateway.overview.schemas import OrdersSection, OrdersUnavailable, Overview, RecentOrders

logger = structlog.get_logger("gateway.overview")

PROFILE_PATH = "/api/v1/users/me"
ORDERS_PATH = "/api/v1/orders"


class ProfileRefused(Exception):
    """users answered the profile request with an error; the client gets that answer."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"users answered {response.status_code}")
        self.response = response


async def build_overview(
    *,
    users: UpstreamClient,
    orders: UpstreamClient,
    headers: Headers,
    recent_orders: int,
    orders_timeout_seconds: float,
) -> Overview:
    """The overview for the caller whose credentials are in `headers`.

    Raises `ProfileRefused` for an error answer from users, and the chassis
    upstream errors when users cannot be reached.
    """
    orders_task = asyncio.create_task(
        fetch_recent_orders(
            orders, headers=headers, limit=recent_orders, timeout_seconds=orders_timeout_seconds
        ),
        name="overview-orders",
    )
    try:
        profile = await fetch_profile(users, headers=headers)
    except BaseException:
        orders_task.cancel()
        await asyncio.gather(orders_task, return_exceptions=True)
        raise
    return Overview(profile=profile, orders=await orders_task)


async def fetch_profile(users: UpstreamClient, *, headers: Headers) -> UserRead:
    response = await users.get(PROFILE_PATH, headers=headers)
    if response.status_code != 200:
        raise ProfileRefused(response)
    try:
        return UserRead.model_validate_json(response.content)
    except ValidationError as exc:
        logger.warning("overview_profile_invalid", errors=exc.error_count())
        raise UpstreamBadGateway(users.name) from None


async def fetch_recent_orders(
    orders: UpstreamClient, *, headers: Headers, limit: int, timeout_seconds: float
) -> OrdersSection:
    try:
        async with asyncio.timeout(timeout_seconds):
            response = await orders.get(ORDERS_PATH, params={"limit": limit}, headers=headers)
    except (ServiceError, TimeoutError) as exc:
        logger.warning("overview_orders_unavailable", reason=type(exc).__name__)
        return OrdersUnavailable()
    if response.status_code != 200:
        logger.warning("overview_orders_unavailable", reason=f"status_{response.status_code}")
        return OrdersUnavailable()
    try:
        page = OrderPage.model_validate_json(response.content)
    except ValidationError as exc:
        logger.warning(
            "overview_orders_unavailable", reason="invalid_answer", errors=exc.error_count()
        )
        return OrdersUnavailable()
    return RecentOrders(items=page.items[:limit])
