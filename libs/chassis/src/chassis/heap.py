"""Keep full garbage collections short: freeze the heap that start-up built.

A service's heap after start-up (FastAPI, pydantic, SQLAlchemy, OpenTelemetry,
the app itself) is hundreds of thousands of objects that live as long as the
process. CPython's full (generation 2) collection walks every one of them:
measured here under 100 orders/s, 30 to 90 ms each, during which the event loop
serves nobody; they were the tail of the order-to-event latency (docs/adr/0017).
`gc.freeze()` moves every object alive at that moment into a permanent
generation that collections skip, so a full collection walks only what the
process built since. It is done once per process, after a collection (so
start-up's own garbage is freed, not frozen).
"""

from __future__ import annotations

import gc
import time

import structlog

logger = structlog.get_logger("chassis.heap")


def freeze_startup_heap() -> None:
    """Collect once, then hide every object alive now from later collections (once per process).

    Called at the end of start-up, when what is alive is what the process keeps.
    Does nothing once something is frozen: a process that builds several apps
    (a test session) freezes at the first.
    """
    if gc.get_freeze_count():
        return
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    logger.info(
        "heap_frozen",
        objects=gc.get_freeze_count(),
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
    )
