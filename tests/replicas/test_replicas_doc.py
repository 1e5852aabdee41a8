"""docs/reliability.md carries the replica suite's section, one measured line per claim.

Not a replica test itself (no marker): it reads a file, so it runs in every test run and
fails when a claim is added or renamed without the suite having rewritten the section
(`make replicas`), or when the fault suite's rewrite of the document dropped it.
"""

from __future__ import annotations

from tests.faults.report import REPORT_PATH
from tests.replicas.report import (
    BEGIN,
    CLAIMS,
    END,
    HEADING,
    keep_replicas_section,
    read_section,
    replace_section,
)


def test_the_reliability_report_has_a_replicas_section_with_every_claim_measured() -> None:
    section = read_section(REPORT_PATH)
    assert section is not None, "docs/reliability.md has no replicas section: run `make replicas`"
    assert HEADING in section
    lines = [line for line in section.splitlines() if line.startswith("- **")]
    assert [line.partition("** Measured: ")[0].removeprefix("- **") for line in lines] == [
        claim.title for claim in CLAIMS
    ]
    for line, claim in zip(lines, CLAIMS, strict=True):
        measured = line.partition("** Measured: ")[2]
        assert measured.rstrip(".") not in ("", "not run"), f"{claim.id}: nothing measured"


def test_the_section_is_replaced_in_place_and_survives_a_rewrite_of_the_document() -> None:
    section = f"{BEGIN}\nnew figures\n{END}\n"
    document = f"# Reliability\n\n{BEGIN}\nold figures\n{END}\n"
    assert replace_section(document, section) == f"# Reliability\n\n{section}"
    assert replace_section("# Reliability\n", section) == f"# Reliability\n\n{section}"
    regenerated = "# Reliability, regenerated\n"
    assert keep_replicas_section(document, regenerated) == (
        f"# Reliability, regenerated\n\n{BEGIN}\nold figures\n{END}\n"
    )
    assert keep_replicas_section("# no section\n", regenerated) == regenerated
