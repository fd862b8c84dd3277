"""A restarted operator makes no duplicates and, once converged, writes nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from testbed.support.kube import changes_since

from .conftest import Cluster, Operator, sample

pytestmark = pytest.mark.timeout(180)
IDLE_SECONDS = 30


def snapshot(cluster: Cluster, namespace: str) -> dict[str, tuple[str, str]]:
    """name -> (uid, resourceVersion) of the resource and every child kind."""
    objects = {}
    md = cluster.get_md(namespace, "mnist")
    objects["md/mnist"] = (md["metadata"]["uid"], md["metadata"]["resourceVersion"])
    for kind, items in (
        ("deployment", cluster.apps.list_namespaced_deployment(namespace).items),
        ("service", cluster.core.list_namespaced_service(namespace).items),
        (
            "configmap",
            cluster.core.list_namespaced_config_map(namespace, label_selector="app.kubernetes.io/name").items,
        ),
    ):
        for item in items:
            objects[f"{kind}/{item.metadata.name}"] = (item.metadata.uid, item.metadata.resource_version)
    return objects


def changes_during(seconds: int, list_fn: Callable[..., Any], **kwargs: object) -> list[str]:
    """Watch a collection for ``seconds`` from its current state; the changes seen."""
    initial = list_fn(**kwargs)
    rv = (
        initial["metadata"]["resourceVersion"]
        if isinstance(initial, dict)
        else initial.metadata.resource_version
    )
    seen = []
    for event in changes_since(list_fn, rv, seconds, **kwargs):
        obj = event["object"]
        name = obj["metadata"]["name"] if isinstance(obj, dict) else obj.metadata.name
        seen.append(f"{event['type']} {name}")
    return seen


def test_restart_makes_no_duplicates_and_idles_without_writes(
    cluster: Cluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    first = start_operator()
    cluster.create_md(namespace, sample())
    cluster.wait_phase(namespace, "mnist", "Ready")
    cluster.wait_deployments_settled(namespace)
    before = snapshot(cluster, namespace)

    first.stop(kill=True)  # a crash, not a clean shutdown
    start_operator()
    start = time.monotonic()
    md_changes = changes_during(
        IDLE_SECONDS,
        cluster.custom.list_namespaced_custom_object,
        group="serving.modeldeploy.dev",
        version="v1alpha1",
        namespace=namespace,
        plural="modeldeployments",
    )
    assert time.monotonic() - start >= IDLE_SECONDS - 1
    assert md_changes == [], f"the resource was written while idle: {md_changes}"
    after = snapshot(cluster, namespace)
    assert after == before, "children were re-created, duplicated or rewritten after the restart"
    assert sorted(k for k in after if k.startswith("deployment/")) == ["deployment/mnist-v1"]


def test_converged_operator_writes_no_children_while_idle(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    cluster.create_md(namespace, sample())
    cluster.wait_phase(namespace, "mnist", "Ready")
    cluster.wait_deployments_settled(namespace)
    deployment_changes = changes_during(
        IDLE_SECONDS, cluster.apps.list_namespaced_deployment, namespace=namespace
    )
    assert deployment_changes == []
