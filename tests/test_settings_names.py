"""Setting names every service can be configured by (chassis.settings_files)."""

from __future__ import annotations

from pydantic import BaseModel


def test_no_service_setting_ends_in_file() -> None:
    """A field named `*_file` could not be set: its variable would be read as a secret path."""
    from gateway.settings import GatewaySettings
    from orders.settings import OrdersSettings
    from users.settings import UsersSettings
    from worker.settings import WorkerSettings

    def names(model: type[BaseModel]) -> set[str]:
        found = set()
        for name, field in model.model_fields.items():
            found.add(name)
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                found |= names(annotation)
        return found

    every = set().union(
        *(names(cls) for cls in (UsersSettings, OrdersSettings, GatewaySettings, WorkerSettings))
    )
    assert len(every) > 50
    assert not [name for name in every if name.endswith("_file")]
