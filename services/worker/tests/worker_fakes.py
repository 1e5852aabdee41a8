"""Fake users and orders services: exactly the endpoints of the contract that the worker calls.

They run on real sockets (``chassis.testing.servers.serve_in_thread``), so the
worker's HTTP clients, retries and breakers are exercised for real. The fake
orders keeps a real state machine in memory and records every event it would
emit, so tests can assert "one transition each, no double events".
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CLIENT_ID = "worker"
CLIENT_SECRET = "s3cret-for-tests"

#: The moves orders allows (the contract's state machine; expiry fails a pending order).
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"confirmed", "failed", "cancelled"}),
    "confirmed": frozenset({"fulfilled", "failed", "cancelled"}),
    "fulfilled": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}
#: What orders makes of each payment outcome (its ``orders.order.fulfilment`` table).
FULFILMENT_RESULTS: dict[str, tuple[str, str | None]] = {
    "paid": ("fulfilled", None),
    "declined": ("failed", "payment_declined"),
}


def problem(status: int, title: str, detail: str = "") -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


class FakeUsers:
    """``POST /api/v1/auth/token`` (client credentials) issuing opaque tokens it can revoke."""

    def __init__(self, *, expires_in: float = 300.0) -> None:
        self.expires_in = expires_in
        self.secrets = {CLIENT_ID: CLIENT_SECRET}
        self.issued: list[str] = []
        self.revoked: set[str] = set()
        self.token_requests = 0
        self.fail_with: deque[int] = deque()
        self.body: bytes | None = None
        self._counter = itertools.count(1)

    def is_valid(self, token: str) -> bool:
        return token in self.issued and token not in self.revoked

    def revoke_all(self) -> None:
        self.revoked.update(self.issued)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/api/v1/auth/token", self._token, methods=["POST"])])

    async def _token(self, request: Request) -> Response:
        self.token_requests += 1
        if self.fail_with:
            return problem(self.fail_with.popleft(), "Unavailable")
        if self.body is not None:
            return Response(self.body, media_type="application/json")
        form = await request.form()
        if form.get("grant_type") != "client_credentials":
            return problem(400, "Unsupported grant type")
        client_id = str(form.get("client_id", ""))
        if self.secrets.get(client_id) != form.get("client_secret"):
            return problem(401, "Invalid client credentials")
        token = f"svc-token-{next(self._counter)}"
        self.issued.append(token)
        return JSONResponse(
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": self.expires_in,
                "scope": "orders:internal",
            }
        )


@dataclass
class Recorded:
    method: str
    path: str
    status: int
    authorization: str | None
    body: Any = None


@dataclass
class FakeOrder:
    id: str
    status: str
    created_at: datetime
    updated_at: datetime
    version: int = 1
    status_reason: str | None = None
    owner_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def read(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner_id": self.owner_id,
            "status": self.status,
            "status_reason": self.status_reason,
            "items": [{"sku": "sku-1", "quantity": 1, "unit_price_minor": 1000}],
            "amount_minor": 1000,
            "currency": "EUR",
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "version": self.version,
        }


class FakeOrders:
    """orders' internal API: the fulfilment report with its events, maintenance endpoints."""

    def __init__(self, users: FakeUsers) -> None:
        self.users = users
        self.orders: dict[str, FakeOrder] = {}
        self.events: list[dict[str, Any]] = []
        self.requests: list[Recorded] = []
        self.fail_with: deque[int] = deque()
        self.forbidden = False
        self.purged = {"idempotency_keys": 3, "outbox_rows": 5}
        # Handlers run on the server thread; tests read from theirs.
        self._lock = threading.Lock()

    # --- test helpers ---------------------------------------------------------------
    def add_order(self, *, status: str = "pending", age_seconds: float = 0.0) -> str:
        created = datetime.now(UTC) - timedelta(seconds=age_seconds)
        order = FakeOrder(
            id=str(uuid.uuid4()), status=status, created_at=created, updated_at=created
        )
        self.orders[order.id] = order
        return order.id

    def status_of(self, order_id: str) -> str:
        return self.orders[order_id].status

    def event_types(self, order_id: str) -> list[str]:
        return [event["type"] for event in self.events if event["order_id"] == order_id]

    def calls_to(self, path_end: str) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith(path_end)]

    # --- the app --------------------------------------------------------------------
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(
                    "/internal/v1/orders/{order_id}/fulfilment",
                    self._record_fulfilment,
                    methods=["POST"],
                ),
                Route("/internal/v1/maintenance/expire-pending", self._expire, methods=["POST"]),
                Route("/internal/v1/maintenance/purge", self._purge, methods=["POST"]),
                Route("/health/live", self._live, methods=["GET"]),
            ]
        )

    async def _guard(self, request: Request) -> Response | None:
        authorization = request.headers.get("authorization")
        token = (authorization or "").removeprefix("Bearer ")
        if self.fail_with:
            return problem(self.fail_with.popleft(), "Service Unavailable")
        if not self.users.is_valid(token):
            return problem(401, "Unauthorized", "Invalid or expired token.")
        if self.forbidden:
            return problem(403, "Forbidden", "Missing scope orders:internal.")
        return None

    async def _record(self, request: Request, response: Response, body: Any = None) -> Response:
        self.requests.append(
            Recorded(
                request.method,
                request.url.path,
                response.status_code,
                request.headers.get("authorization"),
                body,
            )
        )
        return response

    async def _record_fulfilment(self, request: Request) -> Response:
        """orders' rule: paid -> fulfilled, declined -> failed, via confirmed; twice is a no-op."""
        body = await request.json()
        refused = await self._guard(request)
        if refused is not None:
            return await self._record(request, refused, body)
        order = self.orders.get(request.path_params["order_id"])
        if order is None:
            return await self._record(request, problem(404, "Not Found", "No such order."), body)
        target, reason = FULFILMENT_RESULTS[body["payment"]]
        with self._lock:
            if order.status == target and order.status_reason == reason:
                response: Response = JSONResponse(order.read())
            else:
                if order.status == "pending":
                    self._move(order, "confirmed", reason=None)
                if target in TRANSITIONS[order.status]:
                    self._move(order, target, reason=reason)
                    response = JSONResponse(order.read())
                else:
                    response = problem(
                        409, "Conflict", f"Cannot move from {order.status} to {target}."
                    )
        return await self._record(request, response, body)

    def _move(self, order: FakeOrder, target: str, *, reason: str | None) -> None:
        previous = order.status
        order.status = target
        order.status_reason = reason
        order.version += 1
        order.updated_at = datetime.now(UTC)
        self.events.append(
            {
                "type": f"order.{target}",
                "order_id": order.id,
                "previous_status": previous,
                "reason": reason,
            }
        )

    async def _expire(self, request: Request) -> Response:
        body = await request.json()
        refused = await self._guard(request)
        if refused is not None:
            return await self._record(request, refused, body)
        cutoff = datetime.now(UTC) - timedelta(seconds=float(body["older_than_seconds"]))
        expired = 0
        with self._lock:
            for order in self.orders.values():
                if order.status == "pending" and order.created_at < cutoff:
                    self._move(order, "failed", reason="expired")
                    expired += 1
        return await self._record(request, JSONResponse({"expired": expired}), body)

    async def _live(self, request: Request) -> Response:
        return await self._record(request, JSONResponse({"status": "ok"}))

    async def _purge(self, request: Request) -> Response:
        body = await request.json()
        refused = await self._guard(request)
        if refused is not None:
            return await self._record(request, refused, body)
        return await self._record(request, JSONResponse(self.purged), body)
