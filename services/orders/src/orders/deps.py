"""Dependency aliases the routers use (Annotated only, never ``= Depends()`` defaults)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Query

from chassis.auth import Principal, scopes_guard
from chassis.database import SessionDep
from orders.idempotency.schemas import KEY_HEADER, KEY_PATTERN
from orders.pagination import DEFAULT_PAGE_SIZE, MAX_CURSOR_LENGTH, MAX_PAGE_SIZE
from orders.settings import OrdersSettings, app_settings

SettingsDep = Annotated[OrdersSettings, Depends(app_settings)]

#: A caller allowed to read orders (its own; all of them with orders:admin).
OrdersReader = Annotated[Principal, scopes_guard("orders:read")]
#: A caller allowed to place and cancel orders.
OrdersWriter = Annotated[Principal, scopes_guard("orders:write")]

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=KEY_HEADER,
        pattern=KEY_PATTERN,
        description=(
            "Makes the create safe to retry: the same key and body by the same user returns "
            "the first answer (with `Idempotent-Replayed: true`) instead of a second order."
        ),
    ),
]
IfNoneMatchHeader = Annotated[
    str | None,
    Header(alias="If-None-Match", description="ETags the client holds; a match gets 304."),
]
PageLimit = Annotated[
    int, Query(ge=1, le=MAX_PAGE_SIZE, description="Orders per page (newest first).")
]
PageCursor = Annotated[
    str | None,
    Query(
        max_length=MAX_CURSOR_LENGTH,
        description="The `next_cursor` of the previous page; omit for the first page.",
    ),
]

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "IdempotencyKeyHeader",
    "IfNoneMatchHeader",
    "OrdersReader",
    "OrdersWriter",
    "PageCursor",
    "PageLimit",
    "SessionDep",
    "SettingsDep",
]
