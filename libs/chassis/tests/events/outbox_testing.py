"""Helpers the outbox tests share: a frozen clock, staging rows, an inbox, metric samples."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import REGISTRY

from chassis.events import EventEnvelope, add_event

Eventually = Callable[..., Awaitable[None]]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class FrozenClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def stage(outbox: Any, count: int, *, producer: str = "orders") -> list[str]:
    ids: list[str] = []
    async with outbox.sessionmaker.begin() as session:
        for n in range(count):
            envelope = add_event(
                session,
                outbox.model,
                type="order.created",
                payload={"n": n},
                subject=f"user-{n % 3}",
                producer=producer,
            )
            ids.append(envelope.id)
    return ids


class Inbox:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.events: list[EventEnvelope] = []

    async def __call__(self, envelope: EventEnvelope) -> None:
        self.ids.append(envelope.id)
        self.events.append(envelope)
