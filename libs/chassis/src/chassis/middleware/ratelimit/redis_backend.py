"""A sliding-log rate limiter in Redis, shared by every worker and pod.

One Lua script per hit does everything atomically on a sorted set per key
(score = admission time in microseconds): drop entries older than the window,
count, add this hit if it fits, refresh the expiry, and return the count and
the oldest entry so the caller can give an exact ``Retry-After``. Because the
script runs as one unit, 50 concurrent hits for a limit of 10 admit exactly 10.

Why the Redis server's ``TIME`` rather than the caller's clock: pods' clocks
drift apart. If each pod stamped hits with its own time, a pod running two
seconds behind would see the others' entries as "in the future" (never
expiring in time) and its own as already old, so clients would be admitted or
refused depending on which pod served them. Reading ``TIME`` inside the script
gives one clock for everybody. Redis 7 replicates scripts by their effects
(the ZADD with its concrete score), so a non-deterministic ``TIME`` before a
write is allowed and replicas stay identical.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chassis.middleware.ratelimit.backend import (
    RateLimitBackendError,
    RateLimitResult,
    result_from_log,
)

# KEYS[1]: the sorted set of admission times (microseconds) of one client under one rule.
# ARGV: limit, window in microseconds, a member unique to this hit, and "now" in
# microseconds or "" to read the server clock.
SLIDING_WINDOW_LUA = """
local now
if ARGV[4] ~= '' then
  now = tonumber(ARGV[4])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  count = count + 1
  allowed = 1
end
local oldest = now
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] then
  oldest = tonumber(first[2])
end
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
return {allowed, count, now, oldest}
"""

#: Errors that mean "Redis is not there right now" (as opposed to a bug in the call).
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ReadOnlyError,  # a replica promoted mid-failover refuses writes for a moment
    OSError,
    TimeoutError,
)

_MICROS = 1_000_000

RedisProvider = Callable[[], "Redis"]


class RedisSlidingWindow:
    """`RateLimitBackend` over one Redis sorted set per key.

    `client` may be the client itself or a zero-argument callable returning it,
    resolved at the first hit, for apps whose Redis client is opened in the
    lifespan after the middleware stack is built.
    """

    def __init__(self, client: Redis | RedisProvider, *, key_prefix: str = "ratelimit") -> None:
        self._client = client
        self._prefix = key_prefix + ":"
        self._script: AsyncScript | None = None
        # Members must be unique across pods, or two hits in the same microsecond
        # would collapse into one entry.
        self._member_prefix = os.urandom(8).hex() + ":"
        self._sequence = itertools.count()

    def _bound_script(self) -> AsyncScript:
        if self._script is None:
            client = self._client if isinstance(self._client, Redis) else self._client()
            self._script = client.register_script(SLIDING_WINDOW_LUA)
        return self._script

    async def hit(
        self,
        key: str,
        *,
        limit: int,
        window_seconds: float,
        now: float | None = None,
    ) -> RateLimitResult:
        script = self._bound_script()
        window_us = max(math.ceil(window_seconds * _MICROS), 1)
        args = (
            limit,
            window_us,
            f"{self._member_prefix}{next(self._sequence)}",
            "" if now is None else round(now * _MICROS),
        )
        try:
            allowed, count, now_us, oldest_us = await script(keys=[self._prefix + key], args=args)
        except UNAVAILABLE_ERRORS as exc:
            raise RateLimitBackendError(f"rate-limit backend unavailable: {exc}") from exc
        return result_from_log(
            allowed=bool(allowed),
            limit=limit,
            count=int(count),
            oldest=int(oldest_us) / _MICROS,
            now=int(now_us) / _MICROS,
            window_seconds=window_seconds,
        )
