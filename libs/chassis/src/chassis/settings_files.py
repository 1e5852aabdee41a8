"""`<VARIABLE>_FILE`: read any setting from a file instead of the environment.

Compose and Swarm secrets, Kubernetes secret volumes and Vault agents all deliver a secret as
a file. A value passed as an environment variable is shown by ``docker inspect``,
``podman inspect`` and ``kubectl describe``; a path is not. So for every setting variable
``USERS_DATABASE__PASSWORD`` the chassis also reads ``USERS_DATABASE__PASSWORD_FILE``: the
file's text (one trailing newline dropped, as ``echo`` and editors add one) becomes the
value, with the same nesting, parsing and validation as the variable itself.

Setting both the variable and its ``_FILE`` is refused: which of two secrets wins is not
something to guess at start-up. An unreadable file stops start-up naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic_settings import EnvSettingsSource
from pydantic_settings.sources.utils import parse_env_vars

FILE_SUFFIX = "_FILE"


class SettingsFileError(ValueError):
    """A ``<VARIABLE>_FILE`` that cannot be used; the message names the variable."""


def _read_secret(variable: str, path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SettingsFileError(f"{variable}={path}: cannot be read ({reason})") from None
    # One trailing newline only: a secret may legitimately end in other whitespace.
    return text.removesuffix("\n").removesuffix("\r")


def file_variables(environ: Mapping[str, str], prefix: str) -> dict[str, str]:
    """``{VARIABLE: file text}`` for every ``<prefix>..._FILE`` in `environ`."""
    upper_prefix = prefix.upper()
    present = {name.upper() for name in environ}
    values: dict[str, str] = {}
    for name, path in environ.items():
        if not _is_file_variable(name, upper_prefix):
            continue
        target = name[: -len(FILE_SUFFIX)]
        if target.upper() in present:
            raise SettingsFileError(f"both {target} and {name} are set: set only one of them")
        if not path:
            raise SettingsFileError(f"{name} is empty: give the path of the file to read")
        values[target] = _read_secret(name, path)
    return values


def _is_file_variable(name: str, upper_prefix: str) -> bool:
    upper = name.upper()
    return upper.startswith(upper_prefix) and upper.endswith(FILE_SUFFIX)


class EnvWithoutFilesSource(EnvSettingsSource):
    """The environment source minus the ``_FILE`` variables (`SettingsFilesSource` reads them):
    nested groups forbid unknown keys, and ``DATABASE__PASSWORD_FILE`` is not a field."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        upper_prefix = self.env_prefix.upper()
        return {
            name: value
            for name, value in super()._load_env_vars().items()
            if not _is_file_variable(name, upper_prefix)
        }


class SettingsFilesSource(EnvSettingsSource):
    """The environment source, fed with the contents of the ``_FILE`` variables."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            file_variables(os.environ, self.env_prefix),
            self.case_sensitive,
            self.env_ignore_empty,
            self.env_parse_none_str,
        )
