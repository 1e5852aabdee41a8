"""The step timeline: per-second, per-group request counts and histograms, and the targets.

Recorded by the Locust hooks (loadtests.hooks) in every process that runs users, shipped
from workers to the master with the regular stats report, and written as JSON with
``--timeline-file``; the capacity report cuts it into steps. Plain Python, no Locust.
"""

from __future__ import annotations

import threading
from typing import Any

from loadtests.histogram import merge, round_ms

Buckets = dict[int, dict[str, list[Any]]]


class Timeline:
    """Per-second, per-group request counts and histograms, plus the shape's targets."""

    def __init__(self) -> None:
        self.seconds: Buckets = {}
        self.targets: list[tuple[float, int | None]] = []
        self.plan: dict[str, Any] = {}
        self.started_at: float | None = None
        #: Set at init: this process records (or, as a master, collects) the timeline.
        self.enabled = False
        self._lock = threading.Lock()

    def add(self, second: int, group: str, response_time_ms: float, failed: bool) -> None:
        with self._lock:
            cell = self.seconds.setdefault(second, {}).setdefault(group, [0, 0, {}])
            cell[0] += 1
            cell[1] += int(failed)
            bucket = round_ms(response_time_ms)
            cell[2][bucket] = cell[2].get(bucket, 0) + 1

    def take(self) -> Buckets:
        with self._lock:
            taken, self.seconds = self.seconds, {}
        return taken

    def absorb(self, buckets: Buckets) -> None:
        # JSON over the wire turns int keys into strings: normalise both ways here.
        with self._lock:
            for second, groups in buckets.items():
                mine = self.seconds.setdefault(int(second), {})
                for group, (requests, failures, histogram) in groups.items():
                    cell = mine.setdefault(group, [0, 0, {}])
                    cell[0] += requests
                    cell[1] += failures
                    cell[2] = merge([cell[2], {int(k): v for k, v in histogram.items()}])

    def to_json(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "plan": self.plan,
            "targets": self.targets,
            "seconds": {
                str(second): {
                    group: {"requests": cell[0], "failures": cell[1], "histogram": cell[2]}
                    for group, cell in groups.items()
                }
                for second, groups in sorted(self.seconds.items())
            },
        }


TIMELINE = Timeline()
