"""The Helm chart's secrets and service environments: no secret in values, every secret read
from an existing Secret named in values, and each service accepting the environment it gets.

Rendered offline with Helm's own engine, as in test_helm.py.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.deploy.k8s import (
    CHART,
    SECRET_KEY,
    SECRET_REFERENCE_KEYS,
    VALUES_SETS,
    Rendered,
    containers,
    deep_merge,
    deployment,
    env_of,
    name,
    render_set,
    values_of,
    workloads,
)

helm_python = pytest.importorskip("helm_python", reason="helm-python-sdk is not installed")
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is not installed"
)


def walk_strings(node: Any, path: str = "") -> Iterator[tuple[str, str, str]]:
    """(dotted path, key, value) of every string in a values document."""
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(value, str):
                yield child, str(key), value
            else:
                yield from walk_strings(value, child)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk_strings(value, f"{path}[{index}]")


@pytest.mark.parametrize(
    "values_file", ["values.yaml", *(f"values-{s}.yaml" for s in VALUES_SETS[1:])]
)
def test_no_values_file_holds_a_secret(values_file: str) -> None:
    document = yaml.safe_load((CHART / values_file).read_text())
    checked = 0
    for path, key, value in walk_strings(document):
        if not SECRET_KEY.search(key):
            continue
        checked += 1
        assert key in SECRET_REFERENCE_KEYS or value == "", f"{values_file}: {path} = {value!r}"
    if values_file == "values.yaml":
        assert checked >= 5
    # No PEM block or URL with credentials anywhere either.
    text = (CHART / values_file).read_text()
    assert "-----BEGIN" not in text
    assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", text), values_file


@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_every_secret_is_read_from_an_existing_secret_named_in_values(values_set: str) -> None:
    rendered = render_set(values_set)
    assert rendered.of_kind("Secret") == [], "the chart never creates a Secret"
    merged = deep_merge(yaml.safe_load((CHART / "values.yaml").read_text()), values_of(values_set))
    named = {
        value for path, key, value in walk_strings(merged) if key == "existingSecret" and value
    }
    refs = 0
    for obj in workloads(rendered):
        for container in containers(obj):
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref is not None:
                    refs += 1
                    assert ref["name"] in named, (obj["metadata"]["name"], ref)
                elif SECRET_KEY.search(item["name"]) and "$(" not in item.get("value", ""):
                    pytest.fail(f"{item['name']} is a literal in {obj['metadata']['name']}")
    assert refs >= 6
    for config in rendered.of_kind("ConfigMap"):
        for key in config["data"]:
            assert not SECRET_KEY.search(key), (config["metadata"]["name"], key)


def test_database_and_redis_urls_reference_their_passwords() -> None:
    rendered = render_set("prod")
    (users,) = containers(deployment(rendered, "users"))
    env = list(env_of(users))
    url = env_of(users)["USERS_DATABASE__URL"]["value"]
    assert url == (
        "postgresql+asyncpg://users:$(DATABASE_PASSWORD)@postgres.data.svc.cluster.local:5432/users"
    )
    # $(VAR) expands only variables defined earlier in the list.
    assert env.index("DATABASE_PASSWORD") < env.index("USERS_DATABASE__URL")
    assert env.index("REDIS_PASSWORD") < env.index("USERS_REDIS__URL")
    redis_url = env_of(users)["USERS_REDIS__URL"]["value"]
    assert redis_url == "redis://:$(REDIS_PASSWORD)@redis.data.svc.cluster.local:6379/0"
    signing = env_of(users)["USERS_SIGNING__PRIVATE_KEY_PEM"]["valueFrom"]["secretKeyRef"]
    assert signing == {"name": "chassis-secrets", "key": "signing-private-key.pem"}
    clients = json.loads(env_of(users)["USERS_SERVICE_CLIENTS"]["value"])
    assert clients == {
        "worker": {"secret": "$(SERVICE_CLIENT_SECRET)", "scopes": ["orders:internal"]}
    }
    (worker,) = containers(deployment(rendered, "worker"))
    assert (
        env_of(worker)["WORKER_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]
        == (env_of(users)["SERVICE_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"])
    )


def resolved_env(rendered: Rendered, service: str, secrets: dict[str, str]) -> dict[str, str]:
    """The environment the container gets: ConfigMap, then env with $(VAR) expanded."""
    (container,) = containers(deployment(rendered, service))
    env = dict(rendered.get("ConfigMap", name(service))["data"])
    for item in container["env"]:
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[ref["key"]]
        else:
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], item["value"])
    return env


@pytest.fixture(scope="module")
def signing_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.mark.parametrize("values_set", ["dev", "staging", "prod"])
def test_each_service_accepts_the_environment_the_chart_gives_it(
    values_set: str, signing_key_pem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chassis.settings import load_settings
    from gateway.settings import GatewaySettings
    from orders.settings import OrdersSettings
    from users.settings import UsersSettings
    from worker.settings import WorkerSettings

    classes = {
        "users": UsersSettings,
        "orders": OrdersSettings,
        "gateway": GatewaySettings,
        "worker": WorkerSettings,
    }
    secrets = {
        "users-db-password": "users0password",
        "orders-db-password": "orders0password",
        "worker-client-secret": "a-worker-client-secret-of-length",
        "redis-password": "redis0password",
        "signing-private-key.pem": signing_key_pem,
    }
    rendered = render_set(values_set)
    expected_environment = values_of(values_set)["environment"]
    for service, cls in classes.items():
        env = resolved_env(rendered, service, secrets)
        with monkeypatch.context() as patch:
            for key in list(os.environ):
                if key.startswith(f"{service.upper()}_"):
                    patch.delenv(key)
            for key, value in env.items():
                patch.setenv(key, value)
            settings: Any = load_settings(cls)  # type: ignore[type-var]
        assert settings.environment == expected_environment, service
        assert settings.server.host == "0.0.0.0", service  # noqa: S104 - inside the pod
        # Log lines over OTLP (to Loki) only where the values set turns it on: Tilt's.
        assert settings.log.otlp_export is (values_set == "dev"), service
        assert "$(" not in str(settings.redis.url)
        if service in ("users", "orders"):
            assert "$(" not in str(settings.database.url)
        if service == "users":
            client = settings.service_clients["worker"]
            assert client.secret.get_secret_value() == secrets["worker-client-secret"]
        if service == "gateway":
            assert str(settings.upstreams["users"].base_url).startswith(
                f"http://{name('users')}:8001"
            )
