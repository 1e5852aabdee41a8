"""The worker's one report, ``POST /internal/v1/orders/{id}/fulfilment``: orders owns the moves."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from httpx import AsyncClient

from chassis.events import EventEnvelope
from chassis.jobs import job_id_for
from contracts.jobs import FULFIL_ORDER
from orders.order.fulfilment import PAYMENT_DECLINED_REASON, JobRequest, fulfilment_job_for

Place = Callable[..., Awaitable[dict[str, Any]]]


def fulfilment_url(order_id: str) -> str:
    return f"/internal/v1/orders/{order_id}/fulfilment"


async def report(client: AsyncClient, tokens: Any, order_id: str, payment: str) -> Any:
    return await client.post(
        fulfilment_url(order_id), json={"payment": payment}, headers=tokens.service()
    )


async def test_a_paid_pending_order_is_confirmed_then_fulfilled_in_one_call(
    client: AsyncClient, tokens: Any, place: Place, stored: Any
) -> None:
    order = await place(tokens.user("alice"))

    response = await report(client, tokens, order["id"], "paid")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["status_reason"], body["version"]) == ("fulfilled", None, 3)
    assert await stored.event_types() == ["order.created", "order.confirmed", "order.fulfilled"]
    events = await stored.events()
    assert [event.payload["previous_status"] for event in events[1:]] == ["pending", "confirmed"]


async def test_a_declined_payment_fails_the_order_with_the_reason(
    client: AsyncClient, tokens: Any, place: Place, stored: Any
) -> None:
    order = await place(tokens.user("alice"))

    response = await report(client, tokens, order["id"], "declined")

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["status_reason"]) == (
        "failed",
        PAYMENT_DECLINED_REASON,
    )
    assert await stored.event_types() == ["order.created", "order.confirmed", "order.failed"]


async def test_a_confirmed_order_moves_to_its_final_state_only(
    client: AsyncClient, tokens: Any, place: Place, stored: Any
) -> None:
    order = await place(tokens.user("alice"))
    await client.post(
        f"/internal/v1/orders/{order['id']}/status",
        json={"status": "confirmed"},
        headers=tokens.service(),
    )

    response = await report(client, tokens, order["id"], "paid")

    assert response.json()["status"] == "fulfilled"
    assert await stored.event_types() == ["order.created", "order.confirmed", "order.fulfilled"]


@pytest.mark.parametrize("payment", ["paid", "declined"])
async def test_the_same_report_again_answers_200_and_records_nothing(
    client: AsyncClient, tokens: Any, place: Place, stored: Any, payment: str
) -> None:
    order = await place(tokens.user("alice"))
    first = await report(client, tokens, order["id"], payment)
    events = await stored.event_types()

    again = await report(client, tokens, order["id"], payment)

    assert again.status_code == 200
    assert again.json() == first.json()
    assert await stored.event_types() == events


@pytest.mark.parametrize(
    ("first", "then", "current"),
    [("paid", "declined", "fulfilled"), ("declined", "paid", "failed")],
)
async def test_a_contradicting_report_is_409_and_changes_nothing(
    client: AsyncClient,
    tokens: Any,
    place: Place,
    stored: Any,
    first: str,
    then: str,
    current: str,
) -> None:
    order = await place(tokens.user("alice"))
    await report(client, tokens, order["id"], first)
    events = await stored.event_types()

    response = await report(client, tokens, order["id"], then)

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["from_status"] == current
    assert await stored.event_types() == events


async def test_a_cancelled_order_is_not_fulfilled(
    client: AsyncClient, tokens: Any, place: Place, stored: Any
) -> None:
    order = await place(tokens.user("alice"))
    await client.post(f"/api/v1/orders/{order['id']}/cancel", headers=tokens.user("alice"))

    response = await report(client, tokens, order["id"], "paid")

    assert response.status_code == 409
    assert (response.json()["from_status"], response.json()["to_status"]) == (
        "cancelled",
        "fulfilled",
    )
    assert await stored.event_types() == ["order.created", "order.cancelled"]


async def test_an_unknown_order_is_404(client: AsyncClient, tokens: Any) -> None:
    assert (await report(client, tokens, str(uuid.uuid4()), "paid")).status_code == 404
    assert (await report(client, tokens, "not-a-uuid", "paid")).status_code == 404


@pytest.mark.parametrize(
    "body", [{}, {"payment": "maybe"}, {"payment": "paid", "status": "fulfilled"}]
)
async def test_a_malformed_report_is_422(
    client: AsyncClient, tokens: Any, place: Place, body: dict[str, Any]
) -> None:
    order = await place(tokens.user("alice"))

    response = await client.post(fulfilment_url(order["id"]), json=body, headers=tokens.service())

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_a_created_order_starts_its_fulfilment_job_under_a_deterministic_id() -> None:
    order_id = str(uuid.uuid4())
    created = EventEnvelope.new(
        type="order.created", producer="orders", payload={"order": {"id": order_id}}
    )

    assert fulfilment_job_for(created) == JobRequest(
        FULFIL_ORDER, (order_id,), job_id_for(FULFIL_ORDER, order_id)
    )


@pytest.mark.parametrize(
    "event_type", ["order.confirmed", "order.fulfilled", "order.failed", "order.cancelled"]
)
def test_no_other_event_starts_a_job(event_type: str) -> None:
    envelope = EventEnvelope.new(
        type=event_type, producer="orders", payload={"order": {"id": str(uuid.uuid4())}}
    )

    assert fulfilment_job_for(envelope) is None
