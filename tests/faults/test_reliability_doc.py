"""docs/reliability.md is the fault suite's own output: it must list every scenario of the suite.

Not a fault scenario itself (no marker): it reads a file, so it runs in every test run and
fails as soon as a scenario is added, renamed or removed without the suite having
regenerated the document (`uv run pytest -m faults`).
"""

from __future__ import annotations

from tests.faults.report import REPORT_PATH, SCENARIOS


def test_the_reliability_report_has_one_row_per_fault_scenario() -> None:
    assert REPORT_PATH.exists(), "docs/reliability.md is missing: run `uv run pytest -m faults`"
    rows = [line for line in REPORT_PATH.read_text().splitlines() if line.startswith("| ")]
    titles = [row.split(" | ")[0].removeprefix("| ") for row in rows[1:]]
    assert titles == [scenario.title for scenario in SCENARIOS]


def test_every_scenario_row_carries_measured_figures() -> None:
    rows = [line for line in REPORT_PATH.read_text().splitlines() if line.startswith("| ")][1:]
    for row, scenario in zip(rows, SCENARIOS, strict=True):
        promise, measured = row.split(" | ")[1:3]
        assert promise == scenario.promise, f"{scenario.id}: the promise changed since the last run"
        assert measured.strip(" |") not in ("", "not run"), f"{scenario.id}: nothing measured"
