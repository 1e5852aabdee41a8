"""`<VARIABLE>_FILE`: every setting can come from a file (compose and Kubernetes secrets)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from chassis.settings import BaseServiceSettings, SettingsError, load_settings
from chassis.settings_files import SettingsFileError, file_variables


class FileSettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FILES_")

    token: SecretStr | None = None


def _secret(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_nested_secret_comes_from_its_file_and_fills_the_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FILES_DATABASE__URL", "postgresql+asyncpg://users@db:5432/users")
    monkeypatch.setenv("FILES_DATABASE__PASSWORD_FILE", _secret(tmp_path, "pw", "p@ss:w/rd\n"))
    settings = load_settings(FileSettings)
    assert settings.database.password is not None
    assert settings.database.password.get_secret_value() == "p@ss:w/rd"  # newline dropped
    # The password is URL-quoted into the URL the engine gets; the setting itself stays plain.
    assert settings.database_url == "postgresql+asyncpg://users:p%40ss%3Aw%2Frd@db:5432/users"
    assert settings.database.url == "postgresql+asyncpg://users@db:5432/users"


def test_a_top_level_secret_and_plain_variables_mix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FILES_TOKEN_FILE", _secret(tmp_path, "token", "  spaced  \n\n"))
    monkeypatch.setenv("FILES_SERVER__PORT", "9100")
    settings = load_settings(FileSettings)
    assert settings.token is not None
    # Only one trailing newline is dropped: the rest is the secret.
    assert settings.token.get_secret_value() == "  spaced  \n"
    assert settings.server.port == 9100


def test_a_file_setting_is_validated_like_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FILES_SERVER__PORT_FILE", _secret(tmp_path, "port", "not-a-port\n"))
    with pytest.raises(SettingsError, match="FILES_SERVER__PORT"):
        load_settings(FileSettings)


def test_both_the_variable_and_its_file_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FILES_TOKEN", "from-env")
    monkeypatch.setenv("FILES_TOKEN_FILE", _secret(tmp_path, "token", "from-file"))
    with pytest.raises(SettingsError, match="both FILES_TOKEN and FILES_TOKEN_FILE are set"):
        load_settings(FileSettings)


def test_an_unreadable_or_empty_path_stops_start_up_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FILES_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match=r"FILES_TOKEN_FILE=.*missing: cannot be read"):
        load_settings(FileSettings)
    monkeypatch.setenv("FILES_TOKEN_FILE", "")
    with pytest.raises(SettingsError, match="FILES_TOKEN_FILE is empty"):
        load_settings(FileSettings)


def test_only_the_settings_prefix_is_read() -> None:
    environ = {"OTHER_TOKEN_FILE": "/nonexistent", "FILES_TOKEN": "x"}
    assert file_variables(environ, "FILES_") == {}
    with pytest.raises(SettingsFileError):
        file_variables({"FILES_A_FILE": "/nonexistent"}, "FILES_")
