"""Serve an ASGI app on a real 127.0.0.1 socket from a background thread (tests)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import uvicorn

from chassis.types import ASGIApp


@contextmanager
def serve_in_thread(
    app: ASGIApp,
    *,
    lifespan: Literal["auto", "on", "off"] = "on",
    timeout: float = 10.0,
    keep_alive_seconds: int | None = None,
) -> Iterator[str]:
    """Yield the base URL of `app` served by uvicorn in a thread; stop it on exit.

    The socket is bound here (port 0) and handed to uvicorn, so there is no
    window in which another process could take the port. Leaving the block
    stops the server: tests use that to take an upstream down mid-test.
    `keep_alive_seconds` replaces uvicorn's idle keep-alive timeout (5 s).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, lifespan=lifespan, log_config=None, log_level="warning", access_log=False
    )
    if keep_alive_seconds is not None:
        config.timeout_keep_alive = keep_alive_seconds
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"test server on port {port} did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
