"""The Helm chart's network policies: who may reach each service, and where each may go.

Rendered offline with Helm's own engine, as in test_helm.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.k8s import (
    CHART,
    SERVICES,
    VALUES_SETS,
    Rendered,
    deep_merge,
    deployment,
    name,
    render,
    render_set,
    values_of,
)

helm_python = pytest.importorskip("helm_python", reason="helm-python-sdk is not installed")
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is not installed"
)


def selector_components(peers: list[dict[str, Any]]) -> set[str]:
    return {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for peer in peers
        if "podSelector" in peer and "matchLabels" in peer["podSelector"]
    }


@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_each_service_has_a_network_policy(values_set: str) -> None:
    rendered = render_set(values_set)
    for service in SERVICES:
        policy = rendered.get("NetworkPolicy", name(service))
        spec = policy["spec"]
        assert (
            spec["podSelector"]["matchLabels"]
            == deployment(rendered, service)["spec"]["selector"]["matchLabels"]
        )
        assert spec["policyTypes"] == ["Ingress", "Egress"]


def ingress_sources(rendered: Rendered, service: str) -> list[list[dict[str, Any]] | None]:
    """Each ingress rule's peers (None: from anywhere), without the metrics scrapers."""
    metrics = rendered_values_metrics_from()
    rules = rendered.get("NetworkPolicy", name(service))["spec"]["ingress"]
    return [rule.get("from") for rule in rules if rule.get("from") != metrics]


def rendered_values_metrics_from() -> list[dict[str, Any]]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    peers: list[dict[str, Any]] = values["networkPolicy"]["metricsFrom"]
    return peers


def test_only_the_gateway_takes_traffic_from_outside_the_release() -> None:
    rendered = render_set("default")
    assert ingress_sources(rendered, "gateway") == [None]
    users = ingress_sources(rendered, "users")
    assert len(users) == 1
    assert users[0] is not None
    # orders asks users for its JWKS; nothing else reaches users.
    assert selector_components(users[0]) == {"gateway", "orders", "worker"}
    orders = ingress_sources(rendered, "orders")
    assert orders[0] is not None
    assert selector_components(orders[0]) == {"gateway", "worker"}
    assert ingress_sources(rendered, "worker") == []


def test_a_narrowed_gateway_still_admits_the_test_pod_and_locust() -> None:
    rendered = render_set("prod")
    (peers,) = ingress_sources(rendered, "gateway")
    assert peers is not None
    assert peers[0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "ingress-nginx"
    }
    assert selector_components(peers) == {"test"}
    with_locust = render(deep_merge(values_of("prod"), {"loadtest": {"enabled": True}}))
    (peers,) = ingress_sources(with_locust, "gateway")
    assert peers is not None
    assert selector_components(peers) == {"test", "loadtest-master", "loadtest-worker"}


def egress_ports(rendered: Rendered, policy: str) -> set[int]:
    return {
        port["port"]
        for rule in rendered.get("NetworkPolicy", name(policy))["spec"]["egress"]
        for port in rule["ports"]
    }


def test_egress_goes_only_to_dns_redis_the_collector_postgres_and_upstreams() -> None:
    rendered = render_set("default")
    base = {53, 6379, 4317, 4318}
    assert egress_ports(rendered, "users") == base | {5432}
    assert egress_ports(rendered, "orders") == base | {5432, 8001}
    assert egress_ports(rendered, "gateway") == base | {8001, 8002}
    assert egress_ports(rendered, "worker") == base | {8001, 8002}
    for migration in ("users-migrate", "orders-migrate"):
        assert egress_ports(rendered, migration) == {53, 5432}


def test_dev_policies_reach_only_the_dev_postgres_pod() -> None:
    rendered = render_set("dev")
    rules = rendered.get("NetworkPolicy", name("orders"))["spec"]["egress"]
    postgres = next(rule for rule in rules if rule["ports"][0]["port"] == 5432)
    assert postgres["to"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "postgres"}}}
    ]


def test_policies_can_be_turned_off() -> None:
    assert render({"networkPolicy": {"enabled": False}}).of_kind("NetworkPolicy") == []
