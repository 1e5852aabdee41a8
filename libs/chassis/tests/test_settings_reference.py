"""The settings reference is rendered from the models (the repo test checks docs/settings.md)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from chassis.settings import BaseServiceSettings, ServerSettings
from chassis.settings_reference import render, render_all, service_section


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


class ShopServer(ServerSettings):
    port: int = 8100
    """Port the shop listens on."""


class ShopSettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SHOP_")

    server: ShopServer = Field(default_factory=ShopServer)
    """Server settings."""
    webhook_secret: SecretStr = SecretStr("development-only-value")
    """Secret shared with the payment provider."""


def test_a_service_section_lists_only_what_it_adds_or_changes() -> None:
    section = service_section(ShopSettings)
    assert "## ShopSettings (`SHOP_`)" in section
    assert "| `SHOP_SERVER__PORT` | `8100` | Port the shop listens on. |" in section
    assert "`SHOP_WEBHOOK_SECRET`" in section
    assert "SHOP_DATABASE__POOL_SIZE" not in section
    assert "development-only-value" not in section
    assert render_all([ShopSettings]).startswith(render())
