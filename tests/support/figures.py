"""What a reliability suite measured: a session-wide collector and the text of its figures.

The fault suite (scenarios) and the replica suite (claims) each record figures
under known ids while they run, and rewrite their part of docs/reliability.md
from them once a whole session passed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figures:
    """Figures per id (`known` only), and the ids whose tests passed."""

    known: tuple[str, ...]
    measured: dict[str, dict[str, Any]] = field(default_factory=dict)
    passed: set[str] = field(default_factory=set)

    def record(self, key: str, **figures: Any) -> None:
        if key not in self.known:
            raise KeyError(f"unknown id {key!r}")
        self.measured.setdefault(key, {}).update(figures)


def figure(value: Any) -> str:
    """One measured value as the document shows it (floats to 3 significant digits)."""
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {figure(v)}" for k, v in value.items()) or "none"
    return str(value)


def describe(figures: Mapping[str, Any]) -> str:
    """``name: value; ...`` with the names' underscores as spaces; 'not run' for none."""
    text = "; ".join(f"{name.replace('_', ' ')}: {figure(v)}" for name, v in figures.items())
    return text or "not run"
