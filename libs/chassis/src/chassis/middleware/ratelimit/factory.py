"""Pick the rate-limit backend that the settings ask for."""

from __future__ import annotations

from redis.asyncio import Redis

from chassis.middleware.ratelimit.backend import RateLimitBackend
from chassis.middleware.ratelimit.backoff import BackingOffBackend
from chassis.middleware.ratelimit.memory import MemorySlidingWindow
from chassis.middleware.ratelimit.redis_backend import RedisProvider, RedisSlidingWindow
from chassis.settings import BaseServiceSettings


def build_rate_limiter(
    settings: BaseServiceSettings, redis_client: Redis | RedisProvider | None = None
) -> RateLimitBackend:
    """The backend for ``settings.rate_limit.backend``; "redis" needs `redis_client`.

    `redis_client` may be a zero-argument callable returning the client, for
    when the client is only opened in the app's lifespan. Redis keys are
    ``<key_prefix>:<service_name>:...``: the replicas of one service share their
    budgets, while two services on one Redis (a gateway and the service behind
    it both limiting the login path) never count each other's requests.
    """
    config = settings.rate_limit
    if config.backend == "redis":
        if redis_client is None:
            raise ValueError(
                "rate_limit.backend=redis needs a Redis client: pass redis_client "
                "(or set rate_limit.backend=memory for a single process)"
            )
        redis_backend = RedisSlidingWindow(
            redis_client, key_prefix=f"{config.key_prefix}:{settings.service_name}"
        )
        if not config.backend_retry_seconds:
            return redis_backend
        return BackingOffBackend(redis_backend, retry_seconds=config.backend_retry_seconds)
    return MemorySlidingWindow()
