"""Run a suite headless against any target, with CSV and HTML reports in a fresh directory.

    python -m loadtests.run --host https://staging.example.com --users 50 --run-time 5m
    python -m loadtests.run --host http://127.0.0.1:8000 --suite write-heavy --shape spike

What ``make loadtest`` and friends call. Locust runs as a child process (it
monkey-patches the interpreter with gevent); its exit code is returned, so a
breached SLO fails the command. Arguments after ``--`` go to Locust unchanged (any
of its options, or the suites' own: ``--slo``, ``--accounts``, ``--client-ips`` ...).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from loadtests.profiles import PROFILES
from loadtests.shapes import parse_duration

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent

#: suite -> (locustfile, User class, --mix)
SUITES: dict[str, tuple[str, str, str | None]] = {
    **{profile: ("locustfile.py", "JourneyUser", profile) for profile in PROFILES},
    "users": ("direct.py", "UsersServiceUser", None),
    "orders": ("direct.py", "OrdersServiceUser", "journey"),
}
SHAPES = ("step", "spike", "soak")
#: Time Locust gets beyond the planned run to start, stop and write its reports.
GRACE_SECONDS = 120.0
#: The CI smoke (`--smoke`): a few users arriving one a second (sign-up and login hash
#: passwords: a burst would only measure argon2 queueing), for 20 seconds.
SMOKE = {"users": 6, "spawn_rate": 1.0, "run_time": "20s", "name": "smoke"}


@dataclass(frozen=True)
class RunRequest:
    host: str
    reports: Path
    suite: str = "journey"
    users: int = 20
    spawn_rate: float = 5.0
    run_time: str = "1m"
    shape: str | None = None
    processes: int = 0
    extra: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)


def report_dir(base: Path, name: str) -> Path:
    """``base/<name>-<UTC timestamp>``: one directory per run, never overwritten."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = base / f"{name}-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = base / f"{name}-{stamp}-{suffix}"
    return path


def locust_command(request: RunRequest) -> list[str]:
    """The Locust command line for ``request`` (the reports directory must exist)."""
    locustfile, user_class, profile = SUITES[request.suite]
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(PACKAGE / locustfile),
        "--headless",
        "--host",
        request.host,
        "--csv",
        str(request.reports / "stats"),
        "--html",
        str(request.reports / "report.html"),
        "--only-summary",
    ]
    if request.shape is None:
        # A shape sets users and duration itself (Locust ignores these with one).
        command += [
            "--users",
            str(request.users),
            "--spawn-rate",
            str(request.spawn_rate),
            "--run-time",
            request.run_time,
        ]
    if request.processes:
        command += ["--processes", str(request.processes)]
    if profile is not None:
        command += ["--mix", profile]
    return [*command, *request.extra, user_class]


def locust_env(request: RunRequest, base: Mapping[str, str]) -> dict[str, str]:
    env = {**base, **request.env}
    if request.shape is not None:
        env["LOADTEST_SHAPE"] = request.shape
    else:
        env.pop("LOADTEST_SHAPE", None)
    # The package imports resolve from the repository whatever the caller's directory.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run(request: RunRequest, *, timeout: float) -> int:
    request.reports.mkdir(parents=True, exist_ok=True)
    command = locust_command(request)
    print(f"== locust: {' '.join(command[1:])}", flush=True)
    try:
        completed = subprocess.run(  # noqa: S603 - our own interpreter and arguments
            command, env=locust_env(request, os.environ), timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        print(f"== locust did not finish within {timeout:.0f} s", file=sys.stderr)
        return 124
    print(f"== reports: {request.reports} (exit code {completed.returncode})", flush=True)
    return completed.returncode


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.run",
        description="Run a Locust suite headless with CSV and HTML reports; "
        "arguments after -- go to Locust.",
    )
    parser.add_argument("--host", required=True, help="Base URL of the target (the gateway).")
    parser.add_argument("--suite", choices=sorted(SUITES), default="journey")
    parser.add_argument("--users", type=int, default=20, help="Concurrent users (default 20).")
    parser.add_argument("--spawn-rate", type=float, default=5.0, help="Users started per second.")
    parser.add_argument("--run-time", default="1m", help="How long, e.g. 90s, 5m (default 1m).")
    parser.add_argument("--shape", choices=SHAPES, help="A load shape instead of fixed users.")
    parser.add_argument(
        "--processes", type=int, default=0, help="Locust worker processes on this machine."
    )
    parser.add_argument("--reports", type=Path, default=ROOT / "reports")
    parser.add_argument("--name", default="loadtest", help="Prefix of the report directory.")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="The CI smoke: 6 users at 1/s for 20 s (overrides --users, --spawn-rate, "
        "--run-time and --name).",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        help="Kill Locust after this many seconds (default: run time, or 3 h with a shape, "
        f"plus {GRACE_SECONDS:.0f} s).",
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, extra = argv[:split], argv[split + 1 :]
    args = parser.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    return args, extra


def main(argv: Sequence[str] | None = None) -> int:
    args, extra = parse_args(argv)
    planned = 3 * 3600.0 if args.shape else parse_duration(args.run_time)
    request = RunRequest(
        host=args.host.rstrip("/"),
        reports=report_dir(args.reports, args.name),
        suite=args.suite,
        users=args.users,
        spawn_rate=args.spawn_rate,
        run_time=args.run_time,
        shape=args.shape,
        processes=args.processes,
        extra=extra,
    )
    return run(request, timeout=args.timeout or planned + GRACE_SECONDS)


if __name__ == "__main__":
    sys.exit(main())
