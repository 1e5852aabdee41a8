"""Whole-request deadline: a handler that has not started its response in time gets a 504.

The deadline covers the time until the response *starts* (headers sent). Once
the headers are out, the body may stream for as long as it needs: cutting a
long download or a Server-Sent Events stream at the request deadline would
turn healthy streams into truncated ones. Slow bodies are the server's
concern (keep-alive and write timeouts), not this middleware's.

When the deadline expires before the response starts, the handler is cancelled
and the client gets ``504`` problem+json. If the deadline expires in the
instant the response is starting, the response cannot be replaced: it is
ended as is and a warning is logged. Websocket and lifespan scopes pass
through untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from chassis.errors import send_problem
from chassis.types import ASGIApp, Message, Receive, Scope, Send


class TimeoutMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        timeout_seconds: float,
        exempt_paths: Sequence[str] = (),
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        self.app = app
        self.timeout_seconds = timeout_seconds
        #: Path prefixes without a deadline (long polls, uploads that must not be cut).
        self.exempt_paths = tuple(exempt_paths)
        self._logger = structlog.get_logger("chassis.timeout")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (
            self.exempt_paths and scope["path"].startswith(self.exempt_paths)
        ):
            await self.app(scope, receive, send)
            return

        started = False
        deadline = asyncio.timeout(self.timeout_seconds)

        async def send_lifting_deadline(message: Message) -> None:
            nonlocal started
            if not started and message["type"] == "http.response.start":
                started = True
                # An expired deadline cannot be rescheduled; its cancellation is on its way.
                if not deadline.expired():
                    deadline.reschedule(None)
            await send(message)

        try:
            async with deadline:
                await self.app(scope, receive, send_lifting_deadline)
        except TimeoutError:
            if not deadline.expired():
                # The app's own TimeoutError (an upstream call, say) is not our deadline.
                raise
            if started:
                self._logger.warning(
                    "request_deadline_after_response_start",
                    path=scope["path"],
                    timeout_seconds=self.timeout_seconds,
                )
                return
            self._logger.warning(
                "request_deadline_exceeded",
                method=scope["method"],
                path=scope["path"],
                timeout_seconds=self.timeout_seconds,
            )
            await send_problem(
                send, 504, title="Gateway Timeout", detail="The request did not complete in time."
            )
