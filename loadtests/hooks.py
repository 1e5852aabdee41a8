"""Locust wiring shared by every suite: options, the SLO gate, the step timeline, the shapes.

Imported by the locustfiles, so it runs in Locust's gevent-patched process only.

- Options: every knob is a Locust option with a ``LOADTEST_*`` environment variable,
  so the same run is configured from the command line, the environment (compose,
  Helm) or Locust's web UI.
- SLO gate: when the run ends (master or standalone), every endpoint group is
  checked against its objectives; a breach prints the table and sets the exit code
  to 1. With the gate on, the gate alone decides the exit code, so a few failures
  within the error budget do not fail the run; ``--slo off`` restores Locust's rule
  (any failure exits 1).
- Timeline: with ``--timeline-file``, each second's requests, failures and
  response-time histogram per group (shipped from workers to the master with the
  regular stats report) and the shape's user targets are written as JSON, which the
  capacity report cuts into steps.
- Shapes: the ``LoadTestShape`` classes are in ``loadtests.locust_shapes`` (re-exported
  here); the locustfiles expose the one ``LOADTEST_SHAPE`` selects.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from locust import events
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtests.endpoints import GROUPS, group_of
from loadtests.histogram import Histogram, merge, percentile
from loadtests.locust_shapes import (
    SHAPES,
    PlannedShape,
    SoakShape,
    SpikeShape,
    StepShape,
    build_plan,
    selected_shape,
)
from loadtests.profiles import PROFILES
from loadtests.slo import GroupResult, evaluate, parse_objectives, render_table
from loadtests.timeline import TIMELINE, Buckets, Timeline

__all__ = [
    "REPORT_KEY",
    "SHAPES",
    "SLO_OFF",
    "TIMELINE",
    "Buckets",
    "PlannedShape",
    "SoakShape",
    "SpikeShape",
    "StepShape",
    "Timeline",
    "add_options",
    "build_plan",
    "group_results",
    "selected_shape",
]

logger = logging.getLogger("loadtests")

#: Key of the timeline data in the worker-to-master stats report.
REPORT_KEY = "loadtests_timeline"
SLO_OFF = "off"


@events.init_command_line_parser.add_listener
def add_options(parser: LocustArgumentParser) -> None:
    # On the parser itself, not in argument groups: only its add_argument knows Locust's
    # web-UI flags (is_secret). Every option also reads its LOADTEST_* variable.
    group = parser
    group.add_argument(
        "--mix",
        choices=sorted(PROFILES),
        default="journey",
        env_var="LOADTEST_MIX",
        help="Traffic mix of the journey: journey, read-heavy or write-heavy (default journey).",
    )
    group.add_argument(
        "--accounts",
        default="",
        env_var="LOADTEST_ACCOUNTS",
        help="CSV of pre-provisioned accounts (email,password; see loadtests.provision); "
        "empty: every simulated user signs up on start.",
    )
    group.add_argument(
        "--password",
        default="load-test correct horse battery",
        env_var="LOADTEST_PASSWORD",
        is_secret=True,
        help="Password of the accounts signed up on start.",
    )
    group.add_argument(
        "--email-domain",
        default="loadtest.example.com",
        env_var="LOADTEST_EMAIL_DOMAIN",
        help="Domain of the accounts signed up on start (easy to find and delete later).",
    )
    group.add_argument(
        "--client-ips",
        default="",
        env_var="LOADTEST_CLIENT_IPS",
        help="CIDR from which each simulated user takes its own X-Forwarded-For address, so "
        "per-IP limits see one client per user. Only a target that trusts the load "
        "generator as a proxy uses it (make dev's gateway trusts loopback). Empty: off.",
    )
    group.add_argument(
        "--wait-min",
        type=float,
        default=0.5,
        env_var="LOADTEST_WAIT_MIN",
        help="Shortest pause of a simulated user between actions, in seconds (default 0.5).",
    )
    group.add_argument(
        "--wait-max",
        type=float,
        default=1.5,
        env_var="LOADTEST_WAIT_MAX",
        help="Longest pause between actions, in seconds (default 1.5).",
    )
    group.add_argument(
        "--events-timeout",
        type=float,
        default=10.0,
        env_var="LOADTEST_EVENTS_TIMEOUT",
        help="How long a user waits for its order's event on the live stream (default 10 s).",
    )
    group.add_argument(
        "--slo",
        default="",
        env_var="LOADTEST_SLO",
        help="SLO overrides, e.g. 'orders-read.p95_ms=300,*.error_rate=0.02'; "
        "'off' disables the gate. Defaults: see the README.",
    )
    group.add_argument(
        "--timeline-file",
        default="",
        env_var="LOADTEST_TIMELINE_FILE",
        help="Write per-second, per-group stats and the shape's targets here (capacity).",
    )
    group.add_argument(
        "--users-host",
        default="",
        env_var="LOADTEST_USERS_HOST",
        help="users service base URL for the direct suites (default: --host).",
    )
    group.add_argument(
        "--orders-host",
        default="",
        env_var="LOADTEST_ORDERS_HOST",
        help="orders service base URL for the direct suites (default: --host).",
    )
    # Shape parameters: LOADTEST_SHAPE=step|spike|soak picks the shape (it replaces -u/-r/-t).
    shape = parser
    shape.add_argument("--step-users", type=int, default=10, env_var="LOADTEST_STEP_USERS")
    shape.add_argument("--step-time", default="30s", env_var="LOADTEST_STEP_TIME")
    shape.add_argument("--steps", type=int, default=6, env_var="LOADTEST_STEPS")
    shape.add_argument("--baseline-users", type=int, default=10, env_var="LOADTEST_BASELINE_USERS")
    shape.add_argument("--spike-users", type=int, default=50, env_var="LOADTEST_SPIKE_USERS")
    shape.add_argument("--spike-before", default="30s", env_var="LOADTEST_SPIKE_BEFORE")
    shape.add_argument("--spike-time", default="30s", env_var="LOADTEST_SPIKE_TIME")
    shape.add_argument("--spike-after", default="60s", env_var="LOADTEST_SPIKE_AFTER")
    shape.add_argument("--soak-users", type=int, default=20, env_var="LOADTEST_SOAK_USERS")
    shape.add_argument("--soak-ramp", default="1m", env_var="LOADTEST_SOAK_RAMP")
    shape.add_argument("--soak-time", default="30m", env_var="LOADTEST_SOAK_TIME")
    shape.add_argument(
        "--shape-spawn-rate",
        type=float,
        default=5.0,
        env_var="LOADTEST_SHAPE_SPAWN_RATE",
        help="Users started per second by the step and spike shapes (default 5).",
    )


# --- timeline (the record itself is loadtests.timeline) --------------------------------


def _records_timeline(environment: Environment) -> bool:
    if isinstance(environment.runner, WorkerRunner):
        # A worker cannot know whether the master writes a timeline: it always ships
        # its seconds with the stats report (every few seconds) and keeps nothing.
        return True
    options = environment.parsed_options
    return bool(options and options.timeline_file)


@events.init.add_listener
def on_init(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    # Fail at start, not after a long run, on a malformed SLO override or shape parameter.
    try:
        if options is not None and options.slo.strip().lower() != SLO_OFF:
            parse_objectives(options.slo)
        shape = selected_shape()
        if options is not None and shape is not None:
            build_plan(shape.kind, options)
    except ValueError as exc:
        # SystemExit passes through Locust's handler guard (an Exception would be logged
        # and the run would go on).
        raise SystemExit(f"loadtests: {exc}") from None

    TIMELINE.enabled = _records_timeline(environment)
    if not TIMELINE.enabled:
        return

    @environment.events.request.add_listener
    def on_request(
        request_type: str,
        name: str,
        response_time: float | None,
        exception: BaseException | None = None,
        **_: Any,
    ) -> None:
        group = group_of(request_type, name)
        if group is not None:
            TIMELINE.add(int(time.time()), group, response_time or 0.0, exception is not None)


@events.test_start.add_listener
def on_test_start(environment: Environment, **_: Any) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        TIMELINE.started_at = time.time()


@events.report_to_master.add_listener
def on_report_to_master(client_id: str, data: dict[str, Any]) -> None:
    del client_id
    data[REPORT_KEY] = TIMELINE.take()


@events.worker_report.add_listener
def on_worker_report(client_id: str, data: dict[str, Any]) -> None:
    del client_id
    if TIMELINE.enabled:
        TIMELINE.absorb(data.get(REPORT_KEY, {}))


# --- SLO gate ---------------------------------------------------------------------------


def group_results(environment: Environment) -> list[GroupResult]:
    """The run's Locust stats added up per SLO group."""
    totals: dict[str, list[Any]] = {group: [0, 0, []] for group in GROUPS}
    for (name, method), entry in environment.stats.entries.items():
        group = group_of(method, name)
        if group is None:
            continue
        totals[group][0] += entry.num_requests
        totals[group][1] += entry.num_failures
        totals[group][2].append(entry.response_times)
    results = []
    for group, (requests, failures, histograms) in totals.items():
        histogram: Histogram = merge(histograms)
        results.append(
            GroupResult(
                group=group,
                requests=requests,
                failures=failures,
                p95_ms=percentile(histogram, 0.95),
                p99_ms=percentile(histogram, 0.99),
            )
        )
    return results


@events.quitting.add_listener
def on_quitting(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    options = environment.parsed_options
    if options is None:
        return
    if options.timeline_file:
        path = Path(options.timeline_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(TIMELINE.to_json()))
        logger.info("timeline written to %s", path)
    if options.slo.strip().lower() == SLO_OFF:
        return
    objectives = parse_objectives(options.slo)
    results = group_results(environment)
    breaches = evaluate(results, objectives)
    table = render_table(results, objectives, breaches)
    measured = sum(result.requests for result in results)
    if breaches:
        verdict = f"SLO gate: {len(breaches)} breach(es), exit code 1"
    elif measured == 0:
        verdict = "SLO gate: no request was measured, exit code 1"
    else:
        verdict = "SLO gate: every objective holds"
    # stdout on purpose: the table is the run's verdict, read by people and by CI logs.
    print(f"\n{table}\n{verdict}\n", flush=True)  # noqa: T201
    if options.csv_prefix:
        Path(f"{options.csv_prefix}_slo.md").write_text(f"{table}\n\n{verdict}\n")
    runner = environment.runner
    if breaches or measured == 0:
        environment.process_exit_code = 1
    elif runner is not None and not runner.exceptions:
        # The gate is the contract: failures within the error budget do not fail the run
        # (exceptions in the suite's own code still do, through Locust's rule).
        environment.process_exit_code = 0
