"""The SIGUSR1 task dump names where each suspended task waits, innermost frame included."""

from __future__ import annotations

import asyncio
import os
import signal

import structlog

from chassis.task_dump import install_task_dump, task_stacks


async def _innermost_wait(event: asyncio.Event) -> None:
    await event.wait()


async def _outer(event: asyncio.Event) -> None:
    await _innermost_wait(event)


async def test_each_task_s_chain_of_coroutines_is_listed_outermost_first() -> None:
    event = asyncio.Event()
    task = asyncio.create_task(_outer(event), name="stalled")
    await asyncio.sleep(0)
    try:
        stacks = {name: (depth, lines) for name, depth, lines in task_stacks()}
        depth, lines = stacks["stalled"]
        assert depth == len(lines)
        functions = [line.rsplit(" ", 1)[1] for line in lines]
        assert functions[:2] == ["_outer", "_innermost_wait"]
        assert "wait" in functions[2:]  # asyncio.Event.wait, where it is suspended
    finally:
        event.set()
        await task


async def test_sigusr1_logs_one_line_per_task() -> None:
    event = asyncio.Event()
    task = asyncio.create_task(_outer(event), name="stalled")
    install_task_dump()
    try:
        with structlog.testing.capture_logs() as logs:
            os.kill(os.getpid(), signal.SIGUSR1)
            for _ in range(50):
                await asyncio.sleep(0.01)
                if any(entry.get("task") == "stalled" for entry in logs):
                    break
        stalled = [entry for entry in logs if entry.get("task") == "stalled"]
        assert len(stalled) == 1, logs
        assert stalled[0]["event"] == "task_stack"
        assert "_innermost_wait" in stalled[0]["frames"]
    finally:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)
        event.set()
        await task
