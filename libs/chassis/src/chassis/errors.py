"""RFC 9457 problem details for every error a chassis service can answer.

Services raise `ServiceError` subclasses (never HTTPException); the handlers
installed by `install_error_handlers` render them, HTTPException, validation
errors and unhandled exceptions as ``application/problem+json`` carrying the
request id and trace id. Raw ASGI middleware uses `send_problem`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from chassis.context import current_trace_id, get_request_id
from chassis.types import Send

PROBLEM_CONTENT_TYPE = "application/problem+json"

logger = structlog.get_logger("chassis.errors")


def problem_type(status: int) -> str:
    """A stable URN naming the kind of problem, derived from the status."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "error"
    return "urn:problem:" + phrase.lower().replace(" ", "-").replace("'", "")


def problem_body(
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    type_: str | None = None,
    instance: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": type_ or problem_type(status),
        "title": title or _phrase(status),
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    if extra:
        body.update(extra)
    body["request_id"] = get_request_id()
    body["trace_id"] = current_trace_id()
    return body


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class ProblemResponse(Response):
    media_type = PROBLEM_CONTENT_TYPE

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()


def problem_response(
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    type_: str | None = None,
    instance: str | None = None,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> ProblemResponse:
    body = problem_body(
        status, title=title, detail=detail, type_=type_, instance=instance, extra=extra
    )
    return ProblemResponse(body, status_code=status, headers=dict(headers or {}))


async def send_problem(
    send: Send,
    status: int,
    *,
    detail: str | None = None,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Answer with a problem straight from raw ASGI middleware."""
    payload = json.dumps(
        problem_body(status, title=title, detail=detail, extra=extra), separators=(",", ":")
    ).encode()
    raw_headers = [
        (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
        (b"content-length", str(len(payload)).encode()),
    ]
    raw_headers.extend(
        (key.lower().encode("latin-1"), value.encode("latin-1"))
        for key, value in (headers or {}).items()
    )
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload, "more_body": False})


class ServiceError(Exception):
    """Base of the errors services raise; rendered as problem+json."""

    status_code: ClassVar[int] = 500
    title: ClassVar[str] = "Internal Server Error"
    default_detail: ClassVar[str | None] = None

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.detail = detail if detail is not None else self.default_detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        super().__init__(self.detail or self.title)

    def __reduce__(self) -> tuple[Any, ...]:
        # Arq pickles a failed job's exception; subclasses take keyword-only arguments
        # that the default reduction (positional args) cannot replay.
        return (_restore_error, (type(self), self.args, dict(self.__dict__)))


def _restore_error(
    cls: type[ServiceError], args: tuple[Any, ...], state: dict[str, Any]
) -> ServiceError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class BadRequest(ServiceError):
    status_code = 400
    title = "Bad Request"


class Unauthorized(ServiceError):
    status_code = 401
    title = "Unauthorized"
    default_detail = "Missing or invalid credentials."

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.headers.setdefault("WWW-Authenticate", 'Bearer error="invalid_token"')


class Forbidden(ServiceError):
    status_code = 403
    title = "Forbidden"
    default_detail = "You are not allowed to do this."


class NotFound(ServiceError):
    status_code = 404
    title = "Not Found"
    default_detail = "The resource does not exist."


class Conflict(ServiceError):
    status_code = 409
    title = "Conflict"


class PreconditionFailed(ServiceError):
    status_code = 412
    title = "Precondition Failed"


class PayloadTooLarge(ServiceError):
    status_code = 413
    title = "Content Too Large"


class UnprocessableContent(ServiceError):
    status_code = 422
    title = "Unprocessable Content"


class TooManyRequests(ServiceError):
    status_code = 429
    title = "Too Many Requests"
    default_detail = "Rate limit exceeded; retry later."

    def __init__(
        self, detail: str | None = None, *, retry_after: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(detail, **kwargs)
        if retry_after is not None:
            self.headers.setdefault("Retry-After", str(max(retry_after, 0)))


class ServiceUnavailable(ServiceError):
    status_code = 503
    title = "Service Unavailable"
    default_detail = "A dependency is unavailable; retry later."


class BadGateway(ServiceError):
    status_code = 502
    title = "Bad Gateway"
    default_detail = "The upstream service answered with an error."


class GatewayTimeout(ServiceError):
    status_code = 504
    title = "Gateway Timeout"
    default_detail = "The request did not complete in time."


def service_error_response(request: Request, exc: ServiceError) -> ProblemResponse:
    """The problem answer for `exc`, for handlers that translate other errors into one."""
    return problem_response(
        exc.status_code,
        title=exc.title,
        detail=exc.detail,
        instance=request.url.path,
        extra=exc.extra,
        headers=exc.headers,
    )


async def _service_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)  # noqa: S101 - registered for ServiceError only
    if exc.status_code >= 500:
        logger.warning("service_error", status=exc.status_code, detail=exc.detail)
    return service_error_response(request, exc)


async def _http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    if isinstance(exc.__cause__, ClientDisconnect):
        # FastAPI turns a disconnect while it reads a body parameter into a 400 "error
        # parsing the body"; the client is gone, so let the error guard log it as a 499.
        raise exc.__cause__
    if exc.status_code in (204, 304) or exc.status_code < 200:
        return Response(status_code=exc.status_code, headers=exc.headers)
    detail = exc.detail if isinstance(exc.detail, str) else None
    return problem_response(
        exc.status_code, detail=detail, instance=request.url.path, headers=exc.headers
    )


async def _validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    errors = [
        {
            "loc": list(error.get("loc", ())),
            "msg": error.get("msg", ""),
            "type": error.get("type", ""),
        }
        for error in exc.errors()
    ]
    return problem_response(
        422,
        title="Unprocessable Content",
        detail="The request is invalid; see errors.",
        instance=request.url.path,
        extra={"errors": errors},
    )


async def _unhandled_error_handler(request: Request, exc: Exception) -> Response:
    # The traceback goes to the log (with the request id); the client gets nothing of it.
    logger.error("unhandled_error", exc_info=exc, path=request.url.path)
    return problem_response(500, detail="An unexpected error occurred.", instance=request.url.path)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(Exception, _unhandled_error_handler)
