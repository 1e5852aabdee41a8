"""Wire shapes of orders: served by orders, read by the gateway and the worker.

Money is an integer number of minor units (cents) with an ISO 4217 currency code.
Only the code's *form* is checked (three upper-case letters): the list of codes
changes over time and is the payment provider's to enforce, so an unknown but
well-formed code is accepted. The input bounds keep every total below
``MAX_AMOUNT_MINOR`` (10^14), which fits a BIGINT and is exact in a JSON number
read as a double (below 2^53), so no client or database ever sees it overflow.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

MAX_ITEMS = 100
MAX_QUANTITY = 1000
MAX_UNIT_PRICE_MINOR = 10**9
#: The largest possible order total: every bound at once.
MAX_AMOUNT_MINOR = MAX_ITEMS * MAX_QUANTITY * MAX_UNIT_PRICE_MINOR

CurrencyCode = Annotated[
    str,
    Field(
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 alphabetic code; its form is checked, not the list of codes.",
        examples=["EUR"],
    ),
]


class OrderStatus(StrEnum):
    pending = "pending"
    confirmed = "confirmed"
    fulfilled = "fulfilled"
    failed = "failed"
    cancelled = "cancelled"


#: Statuses an order never leaves: a client waiting for an order's outcome stops at one of these.
FINAL_STATUSES = frozenset({OrderStatus.fulfilled, OrderStatus.failed, OrderStatus.cancelled})


class OrderItem(BaseModel):
    """One line of an order."""

    model_config = ConfigDict(extra="forbid")

    sku: str = Field(min_length=1, max_length=64, examples=["SKU-1"])
    quantity: int = Field(ge=1, le=MAX_QUANTITY)
    unit_price_minor: int = Field(
        ge=0, le=MAX_UNIT_PRICE_MINOR, description="Price of one unit in minor units (cents)."
    )


class OrderCreate(BaseModel):
    """Body of ``POST /api/v1/orders``."""

    model_config = ConfigDict(extra="forbid")

    items: list[OrderItem] = Field(min_length=1, max_length=MAX_ITEMS)
    currency: CurrencyCode


class OrderRead(BaseModel):
    """An order as every API answers it (and as events carry it)."""

    id: str = Field(description="UUID of the order.")
    owner_id: str = Field(description="Subject of the user who placed it.")
    status: OrderStatus
    status_reason: str | None = Field(
        default=None, description="Why the order reached its status (e.g. `expired`)."
    )
    items: list[OrderItem]
    amount_minor: int = Field(ge=0, le=MAX_AMOUNT_MINOR, description="Sum of the lines.")
    currency: CurrencyCode
    created_at: AwareDatetime
    updated_at: AwareDatetime
    version: int = Field(ge=1, description="Bumped on every change; the ETag is built from it.")


class OrderPage(BaseModel):
    """One page of orders, newest first; pass `next_cursor` back as `cursor` for the next."""

    items: list[OrderRead]
    next_cursor: str | None = None


class PaymentOutcome(StrEnum):
    """What the payment step answered for an order."""

    paid = "paid"
    declined = "declined"


class FulfilmentReport(BaseModel):
    """Body of ``POST /internal/v1/orders/{id}/fulfilment``: the worker's one report.

    The worker charges and says how it went; orders decides what that means for
    the order (its state table, its events), in one transaction (ADR 0019).
    """

    model_config = ConfigDict(extra="forbid")

    payment: PaymentOutcome


class StatusChange(BaseModel):
    """Body of ``POST /internal/v1/orders/{id}/status``: an operator's move of one order.

    The worker no longer uses it (it reports a ``FulfilmentReport`` instead).
    """

    model_config = ConfigDict(extra="forbid")

    status: Literal["confirmed", "fulfilled", "failed"]
    reason: str | None = Field(default=None, min_length=1, max_length=200)
