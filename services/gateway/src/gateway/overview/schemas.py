"""The overview: the caller's profile and their recent orders, or why the orders are missing."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from contracts.orders import OrderRead
from contracts.users import UserRead


class RecentOrders(BaseModel):
    """The orders service answered: the caller's most recent orders, newest first."""

    status: Literal["ok"] = "ok"
    items: list[OrderRead]


class OrdersUnavailable(BaseModel):
    """The orders service did not answer in time (down, slow or its breaker open)."""

    status: Literal["unavailable"] = "unavailable"


OrdersSection = Annotated[RecentOrders | OrdersUnavailable, Field(discriminator="status")]


class Overview(BaseModel):
    """Everything a home screen needs in one call; degrades to a profile without orders."""

    profile: UserRead
    orders: OrdersSection
