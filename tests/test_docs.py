"""Repository documents that are generated from code must match it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from chassis.settings import BaseServiceSettings
from chassis.settings_reference import render_all
from gateway.settings import GatewaySettings
from orders.settings import OrdersSettings
from users.settings import UsersSettings
from worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[1]
SERVICES: list[type[BaseServiceSettings]] = [
    UsersSettings,
    OrdersSettings,
    GatewaySettings,
    WorkerSettings,
]


def test_settings_reference_is_current() -> None:
    committed = (ROOT / "docs" / "settings.md").read_text()
    assert committed == render_all(SERVICES), "docs/settings.md is stale: run `make docs`"


def _undocumented(model: type[BaseModel], prefix: str = "") -> list[str]:
    missing = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            missing += _undocumented(annotation, f"{prefix}{name}.")
        elif not field.description:
            missing.append(prefix + name)
    return missing


@pytest.mark.parametrize("settings_cls", SERVICES, ids=lambda cls: cls.__name__)
def test_every_service_setting_is_described(settings_cls: type[BaseServiceSettings]) -> None:
    assert _undocumented(settings_cls) == []
