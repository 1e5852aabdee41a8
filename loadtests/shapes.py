"""Load shapes as plain plans: how many users at a given second of the run, and how fast.

Locust's ``LoadTestShape`` (see ``loadtests.hooks``) asks its plan every second; a plan
answers ``(users, spawn_rate)`` or None once the run is over, so every shape is
bounded in time by construction.

- step: ``step_users`` more users every ``step_seconds``, ``steps`` times (the knee);
- spike: a baseline, a sudden jump to ``spike_users``, then the baseline again (recovery);
- soak: a ramp to ``users`` held for ``hold_seconds`` (leaks, drift, slow saturation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Tick = tuple[int, float] | None

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([hms])")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``30s``, ``5m`` or ``1h30m`` (Locust's --run-time syntax)."""
    cleaned = text.strip().lower()
    try:
        seconds = float(cleaned)
    except ValueError:
        matches = list(_DURATION.finditer(cleaned))
        if not matches or "".join(match.group(0) for match in matches) != cleaned:
            raise ValueError(f"{text!r} is not a duration like 90, 30s, 5m or 1h30m") from None
        seconds = sum(float(match.group(1)) * _UNIT_SECONDS[match.group(2)] for match in matches)
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be positive")
    return seconds


@dataclass(frozen=True)
class StepPlan:
    step_users: int
    step_seconds: float
    steps: int
    spawn_rate: float

    def __post_init__(self) -> None:
        _positive(step_users=self.step_users, step_seconds=self.step_seconds)
        _positive(steps=self.steps, spawn_rate=self.spawn_rate)

    @property
    def duration(self) -> float:
        return self.steps * self.step_seconds

    def users_at_step(self, index: int) -> int:
        return self.step_users * (index + 1)

    def step_at(self, run_time: float) -> int | None:
        """The step (from 0) running at ``run_time`` seconds, None after the last."""
        index = int(run_time // self.step_seconds)
        return index if 0 <= index < self.steps else None

    def tick(self, run_time: float) -> Tick:
        index = self.step_at(run_time)
        return None if index is None else (self.users_at_step(index), self.spawn_rate)


@dataclass(frozen=True)
class SpikePlan:
    baseline_users: int
    spike_users: int
    before_seconds: float
    spike_seconds: float
    after_seconds: float
    spawn_rate: float
    spike_spawn_rate: float

    def __post_init__(self) -> None:
        _positive(baseline_users=self.baseline_users, spike_seconds=self.spike_seconds)
        _positive(spawn_rate=self.spawn_rate, spike_spawn_rate=self.spike_spawn_rate)
        if self.spike_users <= self.baseline_users:
            raise ValueError("spike_users must be more than baseline_users")
        if self.before_seconds < 0 or self.after_seconds < 0:
            raise ValueError("before_seconds and after_seconds cannot be negative")

    @property
    def duration(self) -> float:
        return self.before_seconds + self.spike_seconds + self.after_seconds

    def tick(self, run_time: float) -> Tick:
        if run_time < self.before_seconds:
            return self.baseline_users, self.spawn_rate
        if run_time < self.before_seconds + self.spike_seconds:
            return self.spike_users, self.spike_spawn_rate
        if run_time < self.duration:
            # Users leave as fast as they came: the recovery is what is being watched.
            return self.baseline_users, self.spike_spawn_rate
        return None


@dataclass(frozen=True)
class SoakPlan:
    users: int
    ramp_seconds: float
    hold_seconds: float

    def __post_init__(self) -> None:
        _positive(users=self.users, ramp_seconds=self.ramp_seconds)
        _positive(hold_seconds=self.hold_seconds)

    @property
    def duration(self) -> float:
        return self.ramp_seconds + self.hold_seconds

    def tick(self, run_time: float) -> Tick:
        if run_time >= self.duration:
            return None
        return self.users, self.users / self.ramp_seconds


Plan = StepPlan | SpikePlan | SoakPlan


def _positive(**values: float) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")


class PhaseProgress:
    """One line as each phase of a shape ends (a step, the spike, the soak's hold).

    A capacity run takes minutes; the report comes at the end. This says, as it
    goes, what each phase carried: its users, requests and failures, throughput,
    and the 95th percentile Locust reports for its last seconds.
    """

    def __init__(self) -> None:
        self._phase = 0
        self._users: int | None = None
        self._started_at = 0.0
        self._requests = 0
        self._failures = 0

    def change(
        self, *, now: float, users: int | None, requests: int, failures: int, p95_ms: float | None
    ) -> str | None:
        """Record a new user target; the line for the phase it ends, if one was running."""
        line = None
        if self._users is not None:
            self._phase += 1
            seconds = max(now - self._started_at, 1e-9)
            done = requests - self._requests
            failed = failures - self._failures
            p95 = "n/a" if p95_ms is None else f"{p95_ms:.0f} ms"
            line = (
                f"== phase {self._phase} ({self._users} users, {seconds:.0f} s) done: "
                f"{done} requests, {failed} failed, {done / seconds:.1f} req/s, p95 {p95}"
            )
        self._users = users
        self._started_at = now
        self._requests = requests
        self._failures = failures
        return line
