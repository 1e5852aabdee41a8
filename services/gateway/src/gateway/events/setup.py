"""Builder step for live events: the hub and its one Redis subscription, opened in the lifespan.

The subscription uses the app's pooled Redis client (the redis step must come
first). Its readiness check is not critical: live events are best-effort, and
a Redis blip must not take the whole edge out of the load balancer. When
shutdown begins (SIGTERM) every live connection is closed at once, so that
the server is not left waiting for streams that never end by themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from redis.asyncio import Redis
from starlette.requests import HTTPConnection

from chassis.events import EventSubscriber, pattern_for, replay_stream_for
from gateway.events.hub import EventHub

if TYPE_CHECKING:
    from chassis.builder import AppBuilder
    from gateway.settings import EventsSettings

RESOURCE_NAME = "live_events"
READINESS_CHECK = "events"
CONSUMER = "gateway"


@dataclass(frozen=True, slots=True)
class LiveEvents:
    """What ``app.state.live_events`` holds."""

    hub: EventHub
    subscriber: EventSubscriber


def setup_live_events(builder: AppBuilder, settings: EventsSettings) -> None:
    """Register the ``live_events`` resource and its non-critical readiness check."""
    if "redis" not in builder.steps:
        raise ValueError("live events need the redis step: call with_redis() first")
    patterns = [pattern_for(family, prefix=settings.channel_prefix) for family in settings.families]

    @asynccontextmanager
    async def open_live_events(app: FastAPI) -> AsyncIterator[LiveEvents]:
        redis: Redis = app.state.redis
        hub = EventHub(
            queue_size=settings.queue_size,
            dedupe_size=settings.dedupe_size,
            max_connections_per_subject=settings.max_connections_per_subject,
        )
        builder.readiness.on_shutdown(_closer(asyncio.get_running_loop(), hub))
        replay = settings.replay_margin_seconds > 0
        subscriber = EventSubscriber(
            redis,
            handler=hub.handle,
            patterns=patterns,
            consumer=CONSUMER,
            # What orders published while this process was resubscribing: the hub dedupes.
            replay_stream=replay_stream_for(settings.channel_prefix) if replay else None,
            replay_margin=settings.replay_margin_seconds,
        )
        async with subscriber:
            try:
                yield LiveEvents(hub=hub, subscriber=subscriber)
            finally:
                hub.close_all()

    builder.add_resource(RESOURCE_NAME, open_live_events)
    builder.readiness.add(READINESS_CHECK, check_live_events, critical=False)


def _closer(loop: asyncio.AbstractEventLoop, hub: EventHub) -> Callable[[], None]:
    def close_soon() -> None:
        # Called from begin_shutdown; the streams close on a later turn of the loop.
        if not loop.is_closed():
            loop.call_soon_threadsafe(hub.close_all)

    return close_soon


def check_live_events(app: FastAPI) -> Mapping[str, Any]:
    """Readiness details: subscription state and open connections; raises while unsubscribed."""
    live: LiveEvents = app.state.live_events
    details = live.subscriber.check()
    return {**details, "connections": len(live.hub)}


async def get_live_events(connection: HTTPConnection) -> LiveEvents:
    live: LiveEvents = connection.app.state.live_events
    return live
