"""A stand-in for the payment and stock step of fulfilment: some latency, some declines."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any


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
