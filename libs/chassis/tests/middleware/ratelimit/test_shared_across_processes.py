"""Two real server processes sharing one Redis admit the limit once, not once each."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
import redis

from chassis.testing.processes import uvicorn_process

HERE = Path(__file__).parent
LIMIT = 5


@pytest.mark.slow
def test_two_processes_sharing_redis_admit_the_limit_once_in_total(redis_url: str) -> None:
    factory = "shared_limit_app:create_app"
    env = {"RATELIMIT_TEST_REDIS_URL": redis_url, "RATELIMIT_TEST_LIMIT": str(LIMIT)}
    with ExitStack() as stack:
        first = stack.enter_context(uvicorn_process(factory, env=env, app_dir=HERE, timeout=20))
        second = stack.enter_context(uvicorn_process(factory, env=env, app_dir=HERE, timeout=20))
        # Both see the same client: 127.0.0.1 is a trusted proxy, so uvicorn takes the
        # client address from X-Forwarded-For.
        headers = {"X-Forwarded-For": "203.0.113.7"}
        with httpx.Client(headers=headers, timeout=5) as http:
            answers = [http.get(f"{(first, second)[n % 2]}/whoami") for n in range(4 * LIMIT)]

    allowed = [answer for answer in answers if answer.status_code == 200]
    assert len(allowed) == LIMIT
    assert [answer.status_code for answer in answers[LIMIT:]] == [429] * (3 * LIMIT)
    assert len({answer.text for answer in allowed}) == 2  # both processes admitted some
    with redis.Redis.from_url(redis_url) as client:
        assert client.keys("*") == [b"rl-shared:default|ip:203.0.113.7"]
