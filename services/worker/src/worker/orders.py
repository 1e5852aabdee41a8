"""The orders internal API as the worker uses it: authenticated calls, answers as typed errors.

Every call carries the service token; a 401 gets the token replaced and the
call sent once more. Answers are sorted into what the caller must do:
`OrderGone` (404, nothing left to do), `TransitionRefused` (409, the order
has ended otherwise), `TransientOrdersError` (try again later) and
`OrdersRequestRefused` (our request is wrong; trying again will not help).
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from chassis.http import UpstreamClient
from contracts.orders import OrderStatus, PaymentOutcome
from worker.problems import problem_detail
from worker.tokens import ServiceTokenProvider

ModelT = TypeVar("ModelT", bound=BaseModel)

#: Answers that may come out differently next time: a token not yet trusted
#: (key rotation), throttling, and upstream trouble that outlived the client's retries.
TRANSIENT_STATUSES = frozenset({401, 408, 425, 429, 500, 502, 503, 504})


class OrderState(BaseModel):
    """The part of orders' OrderRead the worker reads."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    status: OrderStatus
    status_reason: str | None = None


class ExpiredCount(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    expired: int


class PurgedCounts(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    idempotency_keys: int
    outbox_rows: int


class OrdersError(Exception):
    """An answer from orders that is not the one asked for."""

    def __init__(self, status: int, detail: str) -> None:
        # Both in args: arq pickles a failed job's exception, and unpickling calls cls(*args).
        super().__init__(status, detail)
        self.status = status
        self.detail = detail

    def __str__(self) -> str:
        return f"orders answered {self.status}: {self.detail}"


class OrderGone(OrdersError):
    """404: the order does not exist (any more)."""


class TransitionRefused(OrdersError):
    """409: the order is in a state from which that move is illegal."""


class TransientOrdersError(OrdersError):
    """Orders could not do it now; the same call may work later."""


class OrdersRequestRefused(OrdersError):
    """Orders refused the request itself (403, 422 ...): a bug or a misconfiguration."""


class OrdersApi:
    """Calls ``/internal/v1`` of orders with the worker's service token."""

    def __init__(self, client: UpstreamClient, tokens: ServiceTokenProvider) -> None:
        self.client = client
        self.tokens = tokens

    async def report_fulfilment(self, order_id: str, payment: PaymentOutcome) -> OrderState:
        """Tell orders how the order's payment went; orders moves the order (ADR 0019).

        The one call the job makes: orders answers with the order in its final
        state, 409 when the order had ended otherwise, 404 when it is gone.
        """
        response = await self._call(
            "POST",
            f"/internal/v1/orders/{order_id}/fulfilment",
            json={"payment": payment.value},
            # The same report twice is a no-op on the orders side, so retrying is safe.
            idempotent=True,
        )
        return _parse(OrderState, response)

    async def expire_pending(self, *, older_than_seconds: float) -> int:
        response = await self._call(
            "POST",
            "/internal/v1/maintenance/expire-pending",
            json={"older_than_seconds": older_than_seconds},
            idempotent=True,
        )
        return _parse(ExpiredCount, response).expired

    async def purge(
        self, *, idempotency_older_than_seconds: float, outbox_sent_older_than_seconds: float
    ) -> PurgedCounts:
        response = await self._call(
            "POST",
            "/internal/v1/maintenance/purge",
            json={
                "idempotency_older_than_seconds": idempotency_older_than_seconds,
                "outbox_sent_older_than_seconds": outbox_sent_older_than_seconds,
            },
            idempotent=True,
        )
        return _parse(PurgedCounts, response)

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        token = await self.tokens.token()
        response = await self._send(method, path, token, kwargs)
        if response.status_code == 401:
            token = await self.tokens.refresh(token)
            response = await self._send(method, path, token, kwargs)
        if response.is_success:
            return response
        detail = problem_detail(response)
        status = response.status_code
        if status == 404:
            raise OrderGone(status, detail)
        if status == 409:
            raise TransitionRefused(status, detail)
        if status in TRANSIENT_STATUSES:
            raise TransientOrdersError(status, detail)
        raise OrdersRequestRefused(status, detail)

    async def _send(
        self, method: str, path: str, token: str, kwargs: dict[str, Any]
    ) -> httpx.Response:
        return await self.client.request(
            method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs
        )


def _parse(model: type[ModelT], response: httpx.Response) -> ModelT:
    try:
        return model.model_validate_json(response.content)
    except ValidationError:
        raise TransientOrdersError(response.status_code, "malformed answer") from None
