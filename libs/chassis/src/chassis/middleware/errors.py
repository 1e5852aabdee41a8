"""Last-resort 500: turns an exception escaping the app into problem+json, inside the stack.

Why this exists when the app already has an ``Exception`` handler: Starlette
routes handlers for ``Exception`` (and 500) to ServerErrorMiddleware, which
sits *outside* every user middleware. A 500 rendered there would miss the
request id header, the security headers and the access log line. This
middleware sits innermost instead, so a crash is answered like any other
error: logged with its traceback (logger ``chassis.errors``, event
``unhandled_error``) and answered with a generic 500 problem that carries no
traceback and no exception message.

An ``HTTPException`` that escaped the app's own handlers (raised by ASGI code
outside a route, such as the body limit's signal) still means the status it
carries, so it is answered with that status instead of a 500.

If the response had already started, nothing can be sent any more: the error is
logged and re-raised, so the server aborts the connection.

A client that goes away while the app reads its body (Starlette's
``ClientDisconnect``) is not a server error: there is nobody to answer and
nothing to fix. It gets one info line (event ``client_disconnected``) without a
traceback, no response, and the request is marked so that the access log and
the RED metrics record it as ``499`` (nginx's "client closed request") rather
than a 500. Besides being noise, a traceback here was costly: rendering one
blocked the event loop of a busy process.
"""

from __future__ import annotations

import structlog
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from chassis.context import get_request_id
from chassis.disconnects import mark_client_disconnected
from chassis.errors import send_problem
from chassis.types import ASGIApp, Message, Receive, Scope, Send

GENERIC_DETAIL = "An unexpected error occurred."


class UnhandledErrorMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._logger = structlog.get_logger("chassis.errors")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except ClientDisconnect:
            mark_client_disconnected(scope)
            self._logger.info(
                "client_disconnected",
                request_id=get_request_id(),
                method=scope["method"],
                path=scope["path"],
                response_started=started,
            )
        except HTTPException as exc:
            if started:
                raise
            detail = exc.detail if isinstance(exc.detail, str) else None
            await send_problem(send, exc.status_code, detail=detail, headers=exc.headers)
        except Exception as exc:
            self._logger.exception(
                "unhandled_error",
                exc_info=exc,
                request_id=get_request_id(),
                method=scope["method"],
                path=scope["path"],
                response_started=started,
            )
            if started:
                raise
            await send_problem(send, 500, detail=GENERIC_DETAIL)
