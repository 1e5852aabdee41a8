"""Every error is RFC 9457 problem+json with request_id and trace_id."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from pydantic import BaseModel

from chassis.context import request_id_var
from chassis.errors import (
    BadGateway,
    Conflict,
    Forbidden,
    GatewayTimeout,
    NotFound,
    PayloadTooLarge,
    ServiceError,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    install_error_handlers,
    problem_type,
    send_problem,
)
from chassis.tracing import FASTAPI_TELEMETRY_OFF


class Item(BaseModel):
    name: str
    quantity: int


def make_app() -> FastAPI:
    app = FastAPI(telemetry=FASTAPI_TELEMETRY_OFF)
    install_error_handlers(app)

    @app.get("/missing")
    async def missing() -> None:
        raise NotFound("No such item.")

    @app.get("/limited")
    async def limited() -> None:
        raise TooManyRequests(retry_after=7)

    @app.get("/unauthorized")
    async def unauthorized() -> None:
        raise Unauthorized

    @app.get("/http")
    async def http_error() -> None:
        raise HTTPException(status_code=418, detail="short and stout")

    @app.get("/not-modified")
    async def not_modified() -> None:
        raise HTTPException(status_code=304)

    @app.post("/items")
    async def create_item(item: Item) -> Item:
        return item

    @app.get("/conflict")
    async def conflict() -> None:
        raise Conflict("Already cancelled.", extra={"state": "cancelled"})

    return app


@pytest.fixture
async def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def test_service_error_is_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/missing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "urn:problem:not-found"
    assert body["title"] == "Not Found"
    assert body["status"] == 404
    assert body["detail"] == "No such item."
    assert body["instance"] == "/missing"
    assert "request_id" in body
    assert "trace_id" in body


async def test_too_many_requests_carries_retry_after(client: httpx.AsyncClient) -> None:
    response = await client.get("/limited")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"


async def test_unauthorized_asks_for_a_bearer_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/unauthorized")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_http_exception_is_rendered_as_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/http")
    assert response.status_code == 418
    assert response.json()["detail"] == "short and stout"
    not_modified = await client.get("/not-modified")
    assert not_modified.status_code == 304
    assert not_modified.content == b""


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_validation_errors_list_loc_msg_type(client: httpx.AsyncClient) -> None:
    response = await client.post("/items", json={"name": "x", "quantity": "many"})
    assert response.status_code == 422
    body = response.json()
    assert body["errors"] == [
        {
            "loc": ["body", "quantity"],
            "msg": "Input should be a valid integer, unable to parse string as an integer",
            "type": "int_parsing",
        }
    ]


async def test_extra_members_are_kept(client: httpx.AsyncClient) -> None:
    body = (await client.get("/conflict")).json()
    assert body["status"] == 409
    assert body["state"] == "cancelled"


async def test_problem_carries_request_and_trace_ids(client: httpx.AsyncClient) -> None:
    span_context = SpanContext(
        trace_id=0x1234, span_id=0x99, is_remote=False, trace_flags=TraceFlags(1)
    )
    token = request_id_var.set("req-1")
    try:
        with trace.use_span(NonRecordingSpan(span_context)):
            body = (await client.get("/missing")).json()
    finally:
        request_id_var.reset(token)
    assert body["request_id"] == "req-1"
    assert body["trace_id"] == format(0x1234, "032x")


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (Forbidden(), 403),
        (PayloadTooLarge(), 413),
        (ServiceUnavailable(), 503),
        (BadGateway(), 502),
        (GatewayTimeout(), 504),
        (ServiceError(), 500),
    ],
)
def test_error_classes_have_their_status(error: ServiceError, status: int) -> None:
    assert error.status_code == status
    assert str(error)


def test_problem_type_for_unknown_status() -> None:
    assert problem_type(599) == "urn:problem:error"


async def test_send_problem_from_raw_asgi() -> None:
    messages: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        messages.append(message)

    await send_problem(send, 413, detail="Too big.", headers={"X-Extra": "1"})
    start, body = messages
    assert start["status"] == 413
    headers = dict(start["headers"])  # type: ignore[arg-type]
    assert headers[b"content-type"] == b"application/problem+json"
    assert headers[b"x-extra"] == b"1"
    assert int(headers[b"content-length"]) == len(body["body"])  # type: ignore[arg-type]


def test_errors_survive_pickling_as_job_results() -> None:
    import pickle

    from chassis.http import CircuitOpenError

    original = TooManyRequests("Slow down.", retry_after=3, extra={"rule": "login"})
    restored = pickle.loads(pickle.dumps(original))
    assert type(restored) is TooManyRequests
    assert restored.detail == "Slow down."
    assert restored.headers == {"Retry-After": "3"}
    assert restored.extra == {"rule": "login"}
    assert str(restored) == str(original)

    breaker = pickle.loads(pickle.dumps(CircuitOpenError("orders", retry_in=2.5)))
    assert breaker.retry_in == 2.5
