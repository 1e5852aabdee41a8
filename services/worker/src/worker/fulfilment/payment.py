"""A stand-in for the payment and stock step of fulfilment: some latency, some declines.

A real provider would authorise the amount under the order id (its idempotency
key, so a job run twice charges once), and capture or void it once orders has
answered the report; the simulator keeps that shape: `charge`, then `void`
when orders refuses the outcome.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

logger = structlog.get_logger("worker.fulfilment")


class PaymentSimulator:
    """Declines a `failure_rate` share of charges after `latency_seconds`.

    `rng` is injectable so that tests (and replays) choose the outcomes.
    """

    def __init__(
        self,
        *,
        latency_seconds: float,
        failure_rate: float,
        rng: random.Random,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.latency_seconds = latency_seconds
        self.failure_rate = failure_rate
        self._rng = rng
        self._sleep = sleep

    async def charge(self, order_id: str) -> bool:
        """Whether the order's payment went through."""
        if self.latency_seconds > 0:
            await self._sleep(self.latency_seconds)
        return self._rng.random() >= self.failure_rate

    async def void(self, order_id: str) -> None:
        """Release a charge orders did not take (the order was cancelled or had expired)."""
        logger.info("payment_voided", order_id=order_id)
