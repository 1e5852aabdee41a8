"""Traffic mixes, request names and the Locust command lines the tools build."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from loadtests import endpoints, profiles
from loadtests.profiles import ACTIONS, PROFILES, pick, share
from loadtests.run import SMOKE, RunRequest, locust_command, locust_env, parse_args, report_dir


def test_every_mix_weighs_every_action() -> None:
    for name, weights in PROFILES.items():
        assert set(weights) == set(ACTIONS), name
        assert all(weight > 0 for weight in weights.values()), name


def test_read_heavy_reads_more_and_write_heavy_writes_more_than_the_journey() -> None:
    def reads(mix: str) -> float:
        return share(PROFILES[mix], profiles.LIST_ORDERS) + share(
            PROFILES[mix], profiles.READ_ORDER
        )

    def writes(mix: str) -> float:
        return share(PROFILES[mix], profiles.CREATE_ORDER)

    assert reads("read-heavy") > reads("journey") > reads("write-heavy")
    assert writes("write-heavy") > writes("journey") > writes("read-heavy")
    assert writes("write-heavy") > 0.5


def test_actions_are_drawn_in_proportion_to_their_weights() -> None:
    rng = random.Random(7)
    draws = [pick(PROFILES["journey"], rng) for _ in range(20_000)]
    for action in ACTIONS:
        assert abs(draws.count(action) / len(draws) - share(PROFILES["journey"], action)) < 0.01


def test_every_request_name_belongs_to_one_group() -> None:
    keys = [(e.method, e.name) for e in endpoints.ALL]
    assert len(keys) == len(set(keys))
    assert {e.group for e in endpoints.ALL} == set(endpoints.GROUPS)
    assert endpoints.group_of("GET", "/api/v1/orders/{id}") == "orders-read"
    assert endpoints.group_of("SSE", "order.created delivery") == "events"
    assert endpoints.group_of("GET", "/api/v1/orders/123") is None


def test_a_fixed_load_run_passes_users_rate_and_time_to_locust(tmp_path: Path) -> None:
    request = RunRequest(host="https://staging.example.com", reports=tmp_path, suite="read-heavy")
    command = locust_command(request)
    assert command[:3] == [sys.executable, "-m", "locust"]
    assert command[command.index("-f") + 1].endswith("loadtests/locustfile.py")
    assert command[command.index("--host") + 1] == "https://staging.example.com"
    assert command[command.index("--csv") + 1] == str(tmp_path / "stats")
    assert command[command.index("--html") + 1] == str(tmp_path / "report.html")
    assert command[command.index("--users") + 1] == "20"
    assert command[command.index("--run-time") + 1] == "1m"
    assert command[command.index("--mix") + 1] == "read-heavy"
    assert command[-1] == "JourneyUser"


def test_a_shaped_run_leaves_users_and_time_to_the_shape(tmp_path: Path) -> None:
    request = RunRequest(host="http://h", reports=tmp_path, shape="step", extra=["--slo", "off"])
    command = locust_command(request)
    assert "--users" not in command
    assert "--run-time" not in command
    assert command[-3:] == ["--slo", "off", "JourneyUser"]
    assert locust_env(request, {"PATH": "/bin"})["LOADTEST_SHAPE"] == "step"


def test_an_unshaped_run_ignores_a_shape_left_in_the_environment(tmp_path: Path) -> None:
    env = locust_env(RunRequest(host="http://h", reports=tmp_path), {"LOADTEST_SHAPE": "soak"})
    assert "LOADTEST_SHAPE" not in env
    assert env["PYTHONPATH"].split(":")[0] == str(Path(__file__).resolve().parents[2])


@pytest.mark.parametrize(
    ("suite", "locustfile", "user_class"),
    [("users", "direct.py", "UsersServiceUser"), ("orders", "direct.py", "OrdersServiceUser")],
)
def test_the_direct_suites_run_their_own_user_class(
    tmp_path: Path, suite: str, locustfile: str, user_class: str
) -> None:
    command = locust_command(RunRequest(host="http://h", reports=tmp_path, suite=suite))
    assert command[command.index("-f") + 1].endswith(locustfile)
    assert command[-1] == user_class


def test_each_run_gets_its_own_report_directory(tmp_path: Path) -> None:
    first = report_dir(tmp_path, "smoke")
    first.mkdir()
    second = report_dir(tmp_path, "smoke")
    assert first.name.startswith("smoke-")
    assert second != first


def test_the_smoke_preset_and_locust_pass_through() -> None:
    args, extra = parse_args(["--host", "http://h", "--smoke", "--", "--slo", "auth.p95_ms=1"])
    assert (args.users, args.spawn_rate, args.run_time, args.name) == (
        SMOKE["users"],
        SMOKE["spawn_rate"],
        "20s",
        "smoke",
    )
    assert extra == ["--slo", "auth.p95_ms=1"]
