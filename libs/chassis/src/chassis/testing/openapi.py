"""Structural checks of an OpenAPI 3.x document, for the tests of every service.

`openapi_problems` lists what is wrong in plain words (an empty list means the
document passed); `assert_valid_openapi` fails a test with that list. The checks
are the ones a generated document can get wrong: the version and ``info``, the
``paths``, operations without ``responses``, ``$ref``s that are not local JSON
pointers or point at nothing, and ``operationId``s used twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

__all__ = [
    "HTTP_METHODS",
    "assert_valid_openapi",
    "openapi_problems",
    "openapi_refs",
    "resolve_ref",
]

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_VERSION = re.compile(r"3\.\d+(\.\d+)?")


def openapi_refs(document: Mapping[str, Any]) -> list[str]:
    """Every ``$ref`` string in the document, in document order (repeats included)."""
    return list(_refs(document))


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, Sequence) and not isinstance(node, str | bytes):
        for item in node:
            yield from _refs(item)


def resolve_ref(document: Mapping[str, Any], ref: str) -> Any:
    """The node a local ``#/...`` JSON pointer names.

    Tokens are percent-decoded (the pointer is a URI fragment) and then
    unescaped (``~1`` is ``/``, ``~0`` is ``~``). Raises `ValueError` for a ref
    that is not a local ``#/`` pointer and `LookupError` when it names nothing.
    """
    if not ref.startswith("#/"):
        raise ValueError(f"{ref!r} is not a local '#/...' JSON pointer")
    node: Any = document
    for raw in ref[2:].split("/"):
        token = unquote(raw).replace("~1", "/").replace("~0", "~")
        node = _child(node, token)
        if node is _MISSING:
            raise LookupError(f"{ref!r} does not resolve: no {token!r}")
    return node


_MISSING = object()


def _child(node: Any, token: str) -> Any:
    if isinstance(node, Mapping):
        return node.get(token, _MISSING)
    is_list = isinstance(node, Sequence) and not isinstance(node, str | bytes)
    if is_list and token.isdigit() and int(token) < len(node):
        return node[int(token)]
    return _MISSING


def openapi_problems(document: Mapping[str, Any]) -> list[str]:
    """What is wrong with an OpenAPI 3.x document, one sentence each; ``[]`` if nothing."""
    problems: list[str] = []
    problems.extend(_version_problems(document))
    problems.extend(_info_problems(document))
    problems.extend(_operation_problems(document))
    problems.extend(_ref_problems(document))
    return problems


def assert_valid_openapi(document: Mapping[str, Any]) -> None:
    """Raise `AssertionError` listing every problem `openapi_problems` finds."""
    problems = openapi_problems(document)
    if problems:
        listed = "\n".join(f"- {problem}" for problem in problems)
        raise AssertionError(f"invalid OpenAPI document ({len(problems)} problems):\n{listed}")


def _version_problems(document: Mapping[str, Any]) -> list[str]:
    version = document.get("openapi")
    if version is None:
        return ["missing 'openapi' version"]
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        return [f"unsupported 'openapi' version {version!r} (expected 3.x)"]
    return []


def _info_problems(document: Mapping[str, Any]) -> list[str]:
    info = document.get("info")
    if not isinstance(info, Mapping):
        return ["missing 'info' object"]
    return [
        f"missing 'info.{field}'"
        for field in ("title", "version")
        if not isinstance(info.get(field), str) or not info[field]
    ]


def _operation_problems(document: Mapping[str, Any]) -> list[str]:
    paths = document.get("paths")
    if not isinstance(paths, Mapping) or not paths:
        return ["no 'paths' (the document describes no operation)"]
    problems: list[str] = []
    operation_ids: dict[str, list[str]] = {}
    for path, item in paths.items():
        if not isinstance(item, Mapping):
            problems.append(f"path item {path!r} is not an object")
            continue
        for method in HTTP_METHODS:
            if method not in item:
                continue
            where = f"{method.upper()} {path}"
            operation = item[method]
            if not isinstance(operation, Mapping):
                problems.append(f"{where}: the operation is not an object")
                continue
            responses = operation.get("responses")
            if not isinstance(responses, Mapping) or not responses:
                problems.append(f"{where}: the operation has no 'responses'")
            operation_id = operation.get("operationId")
            if operation_id is not None:
                operation_ids.setdefault(str(operation_id), []).append(where)
    problems.extend(
        f"duplicate operationId {operation_id!r}: {', '.join(users)}"
        for operation_id, users in operation_ids.items()
        if len(users) > 1
    )
    return problems


def _ref_problems(document: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    for ref in dict.fromkeys(_refs(document)):
        try:
            target = resolve_ref(document, ref)
        except (ValueError, LookupError) as error:
            problems.append(f"$ref {error}")
            continue
        if not isinstance(target, Mapping):
            problems.append(f"$ref {ref!r} names a {type(target).__name__}, not an object")
    return problems
