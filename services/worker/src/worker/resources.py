"""What the worker process opens at start-up and its jobs share: clients, token, payment step.

Stored in arq's ``ctx`` under `RESOURCES_KEY`; jobs read it with `get_resources`.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from chassis.http import UpstreamClient
from worker.fulfilment.payment import PaymentSimulator
from worker.orders import OrdersApi
from worker.settings import WorkerSettings
from worker.tokens import ServiceTokenProvider

RESOURCES_KEY = "worker"


@dataclass(frozen=True, slots=True)
class Resources:
    settings: WorkerSettings
    users: UpstreamClient
    orders: UpstreamClient
    tokens: ServiceTokenProvider
    orders_api: OrdersApi
    payment: PaymentSimulator
    rng: random.Random

    @classmethod
    def open(cls, settings: WorkerSettings, *, rng: random.Random) -> Resources:
        users = UpstreamClient("users", settings.upstreams["users"])
        orders = UpstreamClient("orders", settings.upstreams["orders"])
        tokens = ServiceTokenProvider(
            users,
            client_id=settings.client_id,
            # Unset outside production (production refuses to start): users will say no.
            client_secret=settings.client_secret or SecretStr(""),
            refresh_margin_seconds=settings.token_refresh_margin_seconds,
        )
        return cls(
            settings=settings,
            users=users,
            orders=orders,
            tokens=tokens,
            orders_api=OrdersApi(orders, tokens),
            payment=PaymentSimulator(
                latency_seconds=settings.fulfil.latency_seconds,
                failure_rate=settings.fulfil.failure_rate,
                rng=rng,
            ),
            rng=rng,
        )

    async def aclose(self) -> None:
        await asyncio.gather(self.users.aclose(), self.orders.aclose())


def get_resources(ctx: dict[str, Any]) -> Resources:
    """The worker's resources from arq's ``ctx`` (put there by the start-up hook)."""
    resources: Resources = ctx[RESOURCES_KEY]
    return resources
