"""The start-up heap is frozen once per process, after start-up, unless the setting says no."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Run in a fresh interpreter: freezing is once per process, and this test process froze
# its heap at the first app it started.
SCRIPT = """
import asyncio, gc, json, sys
from chassis.builder import AppBuilder
from chassis.settings import BaseServiceSettings, ServerSettings

freeze = sys.argv[1] == "on"
server = ServerSettings(freeze_heap_after_startup=freeze)
app = AppBuilder(BaseServiceSettings(service_name="heap", server=server)).build()
before = gc.get_freeze_count()

async def main():
    async with app.router.lifespan_context(app):
        during = gc.get_freeze_count()
    async with app.router.lifespan_context(app):
        again = gc.get_freeze_count()
    return during, again

during, again = asyncio.run(main())
print(json.dumps({"before": before, "during": during, "again": again}))
"""


def run(freeze: str) -> tuple[dict[str, int], str]:
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, freeze],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,  # the assertion below shows stderr
    )
    assert completed.returncode == 0, completed.stderr
    *log, last = completed.stdout.strip().splitlines()
    counts: dict[str, int] = json.loads(last)
    return counts, "\n".join(log)


@pytest.mark.slow
def test_startup_freezes_what_is_alive_once_per_process() -> None:
    counts, log = run("on")
    assert counts["before"] == 0
    # The imports and the app: a heap of tens of thousands of objects at the least.
    assert counts["during"] > 10_000
    assert log.count("heap_frozen") == 1


@pytest.mark.slow
def test_the_setting_leaves_the_heap_to_the_collector() -> None:
    counts, log = run("off")
    assert counts == {"before": 0, "during": 0, "again": 0}
    assert "heap_frozen" not in log
