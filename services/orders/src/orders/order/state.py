"""The order state machine: the one table of allowed moves, used by every status change.

    pending ──▶ confirmed ──▶ fulfilled
       │            │
       ├──▶ failed ◀┤          (payment/stock failure; pending ones also expire)
       └─▶ cancelled ◀┘        (by the owner, before fulfilment)

fulfilled, failed and cancelled are final.
"""

from __future__ import annotations

from types import MappingProxyType

from chassis.errors import Conflict
from contracts.orders import OrderStatus

TRANSITIONS: MappingProxyType[OrderStatus, frozenset[OrderStatus]] = MappingProxyType(
    {
        OrderStatus.pending: frozenset(
            {OrderStatus.confirmed, OrderStatus.failed, OrderStatus.cancelled}
        ),
        OrderStatus.confirmed: frozenset(
            {OrderStatus.fulfilled, OrderStatus.failed, OrderStatus.cancelled}
        ),
        OrderStatus.fulfilled: frozenset(),
        OrderStatus.failed: frozenset(),
        OrderStatus.cancelled: frozenset(),
    }
)


class IllegalTransition(Conflict):
    """409: the order's state does not allow the move; names both states."""

    def __init__(self, current: OrderStatus, target: OrderStatus) -> None:
        super().__init__(
            f"An order cannot move from {current} to {target}.",
            extra={"from_status": str(current), "to_status": str(target)},
        )


def can_move(current: OrderStatus, target: OrderStatus) -> bool:
    return target in TRANSITIONS[current]


def check_move(current: OrderStatus, target: OrderStatus) -> None:
    """Raise `IllegalTransition` unless `current` -> `target` is in the table."""
    if not can_move(current, target):
        raise IllegalTransition(current, target)
