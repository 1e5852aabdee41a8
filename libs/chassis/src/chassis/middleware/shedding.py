"""Load shedding: a bounded number of requests in flight per process, and no work for callers gone.

At the limit, the next request is answered at once with 503 problem+json and
``Retry-After``: queued behind the others it would only make every answer late,
until callers time out and retry into a queue of work nobody waits for. A
request holds its slot from arrival until its response starts (the span the
telemetry layer's deadline bounds), so a Server-Sent Events stream or a long
download holds none once its headers are out.

Work whose caller is gone is dropped:

- a caller's deadline (``X-Request-Deadline``, `chassis.overload`) already past
  on arrival gets 504 before any handler runs, so nothing touches the database;
- a client that disconnects before its response starts has its handler
  cancelled (its unit of work rolls back) and is recorded as 499; its connection
  is watched once the request has run `watch_after_seconds`, as a task per
  request would cost more than most requests.

Health and metrics paths are exempt, so probes answer during an overload; a
readiness probe that failed then would take a busy pod out of service and
push its load onto the others. Websocket and lifespan scopes pass through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from chassis.disconnects import mark_client_disconnected
from chassis.errors import send_problem
from chassis.metrics.registry import HTTP_REQUESTS_SHED
from chassis.overload import SHED_HEADER, seconds_left
from chassis.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from chassis.builder_protocol import Builder

#: The limit of a process without a database: enough to keep both cores of a small
#: pod busy on I/O-bound work, few enough that the queue drains within a deadline.
DEFAULT_LIMIT_WITHOUT_DATABASE = 100
#: Requests in flight per pooled connection in a process with a database. A request
#: holds a connection for its queries only, not while its token is verified, its
#: body parsed or its answer sent, so a connection serves several requests at once;
#: a request that does wait for one waits at most the pool timeout. Issue 15's first
#: default (the pool's capacity itself) shed a 21-request burst on a 5 + 2 pool and
#: 32 bench connections on 10 + 5 while the database sat mostly idle.
REQUESTS_PER_POOLED_CONNECTION = 4

_EMPTY_BODY: Message = {"type": "http.request", "body": b"", "more_body": False}


class LoadSheddingMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_concurrent: int,
        retry_after_seconds: int = 1,
        exempt_paths: Sequence[str] = ("/health/", "/metrics"),
        cancel_on_disconnect: bool = True,
        watch_after_seconds: float = 0.05,
        service: str = "app",
    ) -> None:
        if max_concurrent < 0:
            raise ValueError("max_concurrent must be 0 (no limit) or positive")
        if retry_after_seconds < 0:
            raise ValueError("retry_after_seconds must not be negative")
        self.app = app
        #: 0 means no limit; deadlines and disconnects are still honoured.
        self.max_concurrent = max_concurrent
        self.exempt_paths = tuple(exempt_paths)
        self.cancel_on_disconnect = cancel_on_disconnect
        #: How long a request runs before its connection is watched for a disconnect.
        self.watch_after_seconds = watch_after_seconds
        #: Requests holding a slot now (one event loop: a plain counter is exact).
        self.in_flight = 0
        self._shed_headers = {"Retry-After": str(retry_after_seconds), SHED_HEADER: "concurrency"}
        self._shed = HTTP_REQUESTS_SHED.labels(service=service, reason="concurrency")
        self._expired = HTTP_REQUESTS_SHED.labels(service=service, reason="deadline")
        self._gone = HTTP_REQUESTS_SHED.labels(service=service, reason="client_gone")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_paths):
            await self.app(scope, receive, send)
            return
        left = seconds_left(scope)
        if left is not None and left <= 0:
            self._expired.inc()
            await send_problem(
                send,
                504,
                title="Gateway Timeout",
                detail="The caller's deadline passed before the request was started.",
                headers={SHED_HEADER: "deadline"},
            )
            return
        if self.max_concurrent and self.in_flight >= self.max_concurrent:
            self._shed.inc()
            await send_problem(
                send,
                503,
                title="Service Unavailable",
                detail="The service is at its limit of concurrent requests; retry later.",
                headers=self._shed_headers,
            )
            return
        self.in_flight += 1
        call = _Call(self, scope, receive, send)
        try:
            await call.run()
        finally:
            call.release()


class _Call:
    """One admitted request: frees its slot when its response starts, watches for its client.

    The watch (a task reading the server's ``receive`` for ``http.disconnect``) starts
    only once the request has run `watch_after_seconds` and its body is read: most
    requests are answered sooner, and a task per request would cost more than they do.
    """

    __slots__ = (
        "_abandoned",
        "_app_receiving",
        "_body_read",
        "_disconnect",
        "_due",
        "_in_app",
        "_owner",
        "_pending_empty_body",
        "_receive",
        "_send",
        "_started",
        "_task",
        "_watcher",
        "held",
        "scope",
    )

    def __init__(self, owner: LoadSheddingMiddleware, scope: Scope, receive: Receive, send: Send):
        self._owner = owner
        self.scope = scope
        self._receive = receive
        self._send = send
        self.held = True
        self._started = False
        self._in_app = False
        self._abandoned = False
        self._due = False
        self._body_read = False
        self._app_receiving = False
        self._pending_empty_body = False
        self._watcher: asyncio.Task[None] | None = None
        self._disconnect: asyncio.Future[Message] | None = None
        self._task: asyncio.Task[Any] | None = None

    def release(self) -> None:
        if self.held:
            self.held = False
            self._owner.in_flight -= 1

    async def run(self) -> None:
        owner = self._owner
        if not owner.cancel_on_disconnect:
            await owner.app(self.scope, self._receive, self.send)
            return
        self._task = asyncio.current_task()
        timer = asyncio.get_running_loop().call_later(owner.watch_after_seconds, self._on_due)
        self._in_app = True
        try:
            await owner.app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            if self._abandoned and self._task is not None and self._task.uncancel() == 0:
                owner._gone.inc()
                mark_client_disconnected(self.scope)
                return
            raise
        finally:
            self._in_app = False
            timer.cancel()
            watcher = self._watcher
            if watcher is not None:
                if not watcher.done():
                    watcher.cancel()
                elif not watcher.cancelled():
                    # Retrieved so asyncio does not log it: a failing receive is the server's.
                    watcher.exception()

    async def send(self, message: Message) -> None:
        if not self._started and message["type"] == "http.response.start":
            self._started = True
            self.release()
        await self._send(message)

    async def receive(self) -> Message:
        if self._pending_empty_body:
            self._pending_empty_body = False
            return _EMPTY_BODY
        if self._disconnect is not None:
            # The watcher owns the server's receive now; it hands on what ends the request.
            return await asyncio.shield(self._disconnect)
        self._app_receiving = True
        try:
            message = await self._receive()
        finally:
            self._app_receiving = False
        if message["type"] == "http.request" and not message.get("more_body", False):
            # The body is in: from here on the server only ever says the client left.
            self._body_read = True
            if self._due:
                self._watch()
        return message

    def _on_due(self) -> None:
        self._due = True
        # Never two readers of the server's receive: a read in progress starts the watch
        # when it returns the last of the body.
        if self._app_receiving:
            return
        if not self._body_read:
            if _declares_body(self.scope):
                return
            # Nothing to read: the watcher takes the server's empty body message, and the
            # app, if it asks, gets the same one from here.
            self._pending_empty_body = True
        self._watch()

    def _watch(self) -> None:
        if self._watcher is not None or self._started or not self._in_app:
            return
        self._disconnect = asyncio.get_running_loop().create_future()
        self._watcher = asyncio.create_task(self._wait_for_disconnect(self._disconnect))

    async def _wait_for_disconnect(self, disconnect: asyncio.Future[Message]) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                break
        disconnect.set_result(message)
        # Only while the app runs and nothing is sent: a started answer is ended by the
        # server itself, and a cancel outside the app would hit the layers above.
        if self._in_app and not self._started and self._task is not None:
            self._abandoned = True
            self._task.cancel()


def _declares_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding":
            return True
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
    return False


def load_shedding_options(builder: Builder) -> dict[str, Any]:
    """`LoadSheddingMiddleware`'s arguments from the settings and the steps the builder has."""
    settings = builder.settings
    server = settings.server
    limit = server.max_concurrent_requests
    if limit is None:
        database = settings.database
        has_database = "database" in builder.steps
        limit = (
            REQUESTS_PER_POOLED_CONNECTION * (database.pool_size + database.max_overflow)
            if has_database
            else DEFAULT_LIMIT_WITHOUT_DATABASE
        )
    return {
        "max_concurrent": limit,
        "retry_after_seconds": server.shed_retry_after_seconds,
        "exempt_paths": (*server.shed_exempt_paths, settings.metrics.path),
        "cancel_on_disconnect": server.cancel_on_disconnect,
        "service": settings.service_name,
    }
