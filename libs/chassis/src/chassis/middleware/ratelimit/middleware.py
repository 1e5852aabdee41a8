"""Pure ASGI middleware that answers 429 when a client exceeds its request budget.

A client is its principal's subject when an upstream auth middleware put one in
``scope["state"]["principal"]``, else its IP (``scope["client"]``, which the
proxy-headers middleware has already rewritten for trusted proxies). The rule
with the longest matching path prefix (and matching method) applies, each with
its own bucket, so a strict login limit does not spend the general budget.
Every answer carries the IETF ``RateLimit-*`` headers; a refusal also carries
``Retry-After``. Place it after proxy headers and authentication.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog
from prometheus_client import Counter

from chassis.errors import send_problem
from chassis.metrics.registry import RATE_LIMIT_BACKEND_ERRORS, RATE_LIMIT_REJECTIONS
from chassis.middleware.ratelimit.backend import (
    RateLimitBackend,
    RateLimitBackendError,
    RateLimitResult,
)
from chassis.settings import RateLimitRule
from chassis.types import ASGIApp, Headers, Message, Receive, Scope, Send

logger = structlog.get_logger("chassis.ratelimit")

#: Retry-After sent with the 503 when the backend is down and the policy is fail closed.
BACKEND_DOWN_RETRY_AFTER_SECONDS = 5

_PREFLIGHT_HEADER = b"access-control-request-method"


@dataclass(frozen=True, slots=True)
class _Policy:
    """A rule (or the default) with everything a request needs precomputed."""

    label: str
    key_prefix: str
    path_prefix: str
    methods: frozenset[str]
    limit: int
    window_seconds: float
    by_ip: bool
    rejections: Counter
    limit_header: bytes = field(init=False)
    policy_header: bytes = field(init=False)

    def __post_init__(self) -> None:
        window = f"{self.window_seconds:g}"
        object.__setattr__(self, "limit_header", str(self.limit).encode())
        object.__setattr__(self, "policy_header", f"{self.limit};w={window}".encode())

    def matches(self, path: str, method: str) -> bool:
        return path.startswith(self.path_prefix) and (not self.methods or method in self.methods)

    def headers(self, result: RateLimitResult) -> Headers:
        return [
            (b"ratelimit-limit", self.limit_header),
            (b"ratelimit-remaining", str(result.remaining).encode()),
            (b"ratelimit-reset", str(math.ceil(result.reset_after_seconds)).encode()),
            (b"ratelimit-policy", self.policy_header),
        ]


class RateLimitMiddleware:
    """Refuse requests over budget with 429 problem+json; see the module docstring.

    `key_func`, when given, names the client for every rule except ``by_ip``
    ones (which always key by IP). `fail_open` decides what happens when the
    backend is unreachable: let the request through, or answer 503.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        backend: RateLimitBackend,
        default_limit: int,
        default_window_seconds: float,
        rules: Sequence[RateLimitRule] = (),
        exempt_paths: Sequence[str] = (),
        fail_open: bool = True,
        key_func: Callable[[Scope], str] | None = None,
        service: str = "service",
        warning_interval_seconds: float = 60.0,
    ) -> None:
        if default_limit < 1 or default_window_seconds <= 0:
            raise ValueError("default_limit must be >= 1 and default_window_seconds > 0")
        self.app = app
        self._backend = backend
        self._fail_open = fail_open
        self._key_func = key_func
        self._exempt = tuple(exempt_paths)
        self._default = _Policy(
            label="default",
            key_prefix="default|",
            path_prefix="",
            methods=frozenset(),
            limit=default_limit,
            window_seconds=default_window_seconds,
            by_ip=False,
            rejections=RATE_LIMIT_REJECTIONS.labels(service=service, rule="default"),
        )
        policies = [self._policy(rule, service) for rule in rules]
        # Longest prefix first; among equal prefixes, method-specific rules first.
        policies.sort(key=lambda policy: (len(policy.path_prefix), bool(policy.methods)))
        self._rules = tuple(reversed(policies))
        policy_label = "open" if fail_open else "closed"
        self._backend_errors = RATE_LIMIT_BACKEND_ERRORS.labels(
            service=service, policy=policy_label
        )
        self._policy_label = policy_label
        self._warning_interval = warning_interval_seconds
        self._last_warning: float | None = None
        self._suppressed_warnings = 0

    @staticmethod
    def _policy(rule: RateLimitRule, service: str) -> _Policy:
        methods = frozenset(method.upper() for method in rule.methods)
        rule_id = rule.path_prefix + "[" + ",".join(sorted(methods)) + "]"
        return _Policy(
            label=rule.path_prefix,
            key_prefix=f"rule:{rule_id}{'|ip' if rule.by_ip else ''}|",
            path_prefix=rule.path_prefix,
            methods=methods,
            limit=rule.requests,
            window_seconds=rule.window_seconds,
            by_ip=rule.by_ip,
            rejections=RATE_LIMIT_REJECTIONS.labels(service=service, rule=rule.path_prefix),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if (self._exempt and path.startswith(self._exempt)) or (
            method == "OPTIONS" and _is_preflight(scope)
        ):
            await self.app(scope, receive, send)
            return

        policy = self._match(path, method)
        try:
            result = await self._backend.hit(
                policy.key_prefix + self._client_key(scope, policy),
                limit=policy.limit,
                window_seconds=policy.window_seconds,
            )
        except RateLimitBackendError as exc:
            self._backend_failed(exc)
            if self._fail_open:
                await self.app(scope, receive, send)
            else:
                await send_problem(
                    send,
                    503,
                    detail="Rate limiting is unavailable; retry later.",
                    headers={"Retry-After": str(BACKEND_DOWN_RETRY_AFTER_SECONDS)},
                )
            return

        headers = policy.headers(result)
        if not result.allowed:
            policy.rejections.inc()
            retry_after = max(math.ceil(result.retry_after_seconds), 1)
            await send_problem(
                send,
                429,
                detail=f"Rate limit exceeded; retry in {retry_after} s.",
                headers={
                    "Retry-After": str(retry_after),
                    **{name.decode(): value.decode() for name, value in headers},
                },
            )
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _match(self, path: str, method: str) -> _Policy:
        for policy in self._rules:
            if policy.matches(path, method):
                return policy
        return self._default

    def _client_key(self, scope: Scope, policy: _Policy) -> str:
        if not policy.by_ip:
            if self._key_func is not None:
                return self._key_func(scope)
            state = scope.get("state")
            principal = state.get("principal") if state else None
            subject = getattr(principal, "subject", None)
            if subject:
                return f"sub:{subject}"
        client = scope.get("client")
        return f"ip:{client[0]}" if client else "ip:unknown"

    def _backend_failed(self, exc: RateLimitBackendError) -> None:
        self._backend_errors.inc()
        # One line per interval: a dead Redis under load would otherwise log every request.
        now = time.monotonic()
        if self._last_warning is not None and now - self._last_warning < self._warning_interval:
            self._suppressed_warnings += 1
            return
        logger.warning(
            "rate_limit_backend_unavailable",
            policy=self._policy_label,
            error=str(exc.__cause__ or exc),
            suppressed=self._suppressed_warnings,
        )
        self._last_warning = now
        self._suppressed_warnings = 0


def _is_preflight(scope: Scope) -> bool:
    return any(name == _PREFLIGHT_HEADER for name, _ in scope["headers"])
