"""The live-events builder step: needs Redis, closes streams when shutdown begins."""

from __future__ import annotations

import pytest

from chassis.builder import AppBuilder
from gateway.events.setup import setup_live_events
from gateway.settings import EventsSettings, GatewaySettings


def test_live_events_need_the_redis_step() -> None:
    builder = AppBuilder(GatewaySettings())

    with pytest.raises(ValueError, match="redis"):
        setup_live_events(builder, EventsSettings())
