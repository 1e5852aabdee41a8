"""Serve an ASGI app on a real 127.0.0.1 socket from a background thread (tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import uvicorn

from chassis.testing.processes import free_port
from chassis.types import ASGIApp


@contextmanager
def serve_in_thread(
    app: ASGIApp, *, lifespan: Literal["auto", "on", "off"] = "on", timeout: float = 10.0
) -> Iterator[str]:
    """Yield the base URL of `app` served by uvicorn in a thread; stop it on exit."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan=lifespan,
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"test server on port {port} did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
