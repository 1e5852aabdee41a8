"""Sliding-window rate limiting: a pure ASGI middleware over a memory or Redis backend."""

from chassis.middleware.ratelimit.backend import (
    RateLimitBackend,
    RateLimitBackendError,
    RateLimitResult,
)
from chassis.middleware.ratelimit.factory import build_rate_limiter
from chassis.middleware.ratelimit.memory import MemorySlidingWindow
from chassis.middleware.ratelimit.middleware import RateLimitMiddleware
from chassis.middleware.ratelimit.redis_backend import RedisSlidingWindow

__all__ = [
    "MemorySlidingWindow",
    "RateLimitBackend",
    "RateLimitBackendError",
    "RateLimitMiddleware",
    "RateLimitResult",
    "RedisSlidingWindow",
    "build_rate_limiter",
]
