"""What every asyncio task of a process is waiting on, logged on SIGUSR1.

A process that answers its liveness probe but makes no progress (a worker
whose jobs stall, a lock never released) shows nothing in a thread dump: all
its coroutines wait inside one thread's event loop. ``kill -USR1 <pid>`` logs
one ``task_stack`` line per task, with the chain of coroutines it is
suspended in, innermost last, as Go's SIGQUIT does for goroutines.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from types import FrameType
from typing import Any

import structlog

logger = structlog.get_logger("chassis.task_dump")

#: Frames kept per task: the outermost few and the innermost, where it waits.
MAX_FRAMES = 40


def coroutine_frames(awaitable: Any) -> Iterator[FrameType]:
    """The frames of a suspended coroutine chain, outermost first (``cr_await`` links)."""
    while awaitable is not None:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is None:
            return
        yield frame
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)


def task_stacks() -> list[tuple[str, int, list[str]]]:
    """(task name, depth, ["file:line function", ...]) for every task of the running loop;
    past `MAX_FRAMES`, the middle of a chain is elided (the depth counts every frame)."""
    stacks = []
    for task in asyncio.all_tasks():
        lines = [
            f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}"
            for frame in coroutine_frames(task.get_coro())
        ]
        depth = len(lines)
        if depth > MAX_FRAMES:
            lines = [*lines[:5], "...", *lines[-(MAX_FRAMES - 6) :]]
        stacks.append((task.get_name(), depth, lines))
    return stacks


def log_task_stacks() -> None:
    """One warning line per task of the running loop."""
    for name, depth, lines in task_stacks():
        logger.warning("task_stack", task=name, depth=depth, frames=" -> ".join(lines))


def install_task_dump(signum: int = signal.SIGUSR1) -> None:
    """Log every task's stack when `signum` arrives (from the loop, so logging is safe)."""
    asyncio.get_running_loop().add_signal_handler(signum, log_task_stacks)
