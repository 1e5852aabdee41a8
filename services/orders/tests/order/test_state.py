"""The transition table: the only moves an order can make."""

from __future__ import annotations

import itertools

import pytest

from contracts.orders import FINAL_STATUSES, OrderStatus
from orders.order.state import TRANSITIONS, IllegalTransition, can_move, check_move

S = OrderStatus
ALLOWED = {
    (S.pending, S.confirmed),
    (S.pending, S.failed),
    (S.pending, S.cancelled),
    (S.confirmed, S.fulfilled),
    (S.confirmed, S.failed),
    (S.confirmed, S.cancelled),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_only_the_contracts_moves_are_allowed(current: S, target: S) -> None:
    assert can_move(current, target) is ((current, target) in ALLOWED)


def test_every_status_has_a_row_and_the_final_ones_lead_nowhere() -> None:
    assert set(TRANSITIONS) == set(S)
    for final in (S.fulfilled, S.failed, S.cancelled):
        assert TRANSITIONS[final] == frozenset()


def test_an_illegal_move_is_a_409_naming_both_states() -> None:
    with pytest.raises(IllegalTransition) as raised:
        check_move(S.fulfilled, S.cancelled)

    error = raised.value
    assert error.status_code == 409
    assert error.extra == {"from_status": "fulfilled", "to_status": "cancelled"}
    assert error.detail == "An order cannot move from fulfilled to cancelled."


def test_a_legal_move_passes() -> None:
    check_move(S.pending, S.confirmed)


def test_the_final_statuses_clients_wait_for_are_the_ones_the_table_never_leaves() -> None:
    assert {status for status, moves in TRANSITIONS.items() if not moves} == FINAL_STATUSES
