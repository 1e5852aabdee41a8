"""Wait in a test until something has happened, without a fixed sleep."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

__all__ = ["Condition", "eventually"]

Condition = Callable[[], bool | Awaitable[bool]]


async def eventually(
    condition: Condition, *, within: float = 10.0, step: float = 0.02, message: str = ""
) -> None:
    """Poll ``condition`` (sync or async) every ``step`` seconds until it is true.

    The condition is always tried at least once, and once more after the
    deadline, so a slow event loop does not fail a condition that did come true.
    Raises `AssertionError` (with ``message``, if given) when it stays false for
    ``within`` seconds.
    """
    deadline = time.monotonic() + within
    while True:
        expired = time.monotonic() > deadline
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if expired:
            detail = f": {message}" if message else ""
            raise AssertionError(f"condition not met within {within}s{detail}")
        await asyncio.sleep(step)
