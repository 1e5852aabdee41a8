"""docs/settings.md is generated from the settings models and must be current."""

from __future__ import annotations

from pathlib import Path

from chassis.settings import BaseServiceSettings
from chassis.settings_reference import render

REFERENCE = Path(__file__).resolve().parents[3] / "docs" / "settings.md"


def test_reference_is_current() -> None:
    assert REFERENCE.read_text() == render(), "docs/settings.md is stale: run `make docs`"


def test_every_setting_is_described() -> None:
    def undocumented(model: type, prefix: str = "") -> list[str]:
        missing = []
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                missing += undocumented(annotation, f"{prefix}{name}.")
            elif not field.description:
                missing.append(prefix + name)
        return missing

    assert undocumented(BaseServiceSettings) == []


def test_reference_names_env_vars_and_defaults() -> None:
    text = render()
    assert "| `<PREFIX>DATABASE__POOL_SIZE` | `10` |" in text
    assert "| `<PREFIX>AUTH__JWKS_URL` | unset |" in text
    assert "`<PREFIX>UPSTREAMS__<NAME>__BREAKER_FAILURE_THRESHOLD`" in text
