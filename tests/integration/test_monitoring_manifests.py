"""manifests/monitoring/ (PodMonitor, PrometheusRule) applied to the real API server with the
Prometheus Operator's own CRDs: their schemas accept ours, and would refuse a broken one."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import Cluster

pytestmark = pytest.mark.timeout(60)
REPO = Path(__file__).resolve().parents[2]


def rendered(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    text = cluster.kubectl("kustomize", str(REPO / "manifests" / "monitoring")).stdout
    documents = [d for d in yaml.safe_load_all(text) if d]
    for document in documents:
        document["metadata"]["namespace"] = namespace
    return documents


def test_the_pod_monitor_and_prometheus_rule_are_accepted_as_written(
    cluster: Cluster, namespace: str
) -> None:
    documents = rendered(cluster, namespace)
    assert sorted(d["kind"] for d in documents) == ["PodMonitor", "PodMonitor", "PrometheusRule"]
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(documents))
    stored = yaml.safe_load(
        cluster.kubectl("get", "prometheusrule", "modeldeploy", "-n", namespace, "-o", "yaml").stdout
    )
    assert [r["alert"] for r in stored["spec"]["groups"][0]["rules"]] == [
        "ModelDeploymentRolledBack",
        "ModelDeploymentDegraded",
        "ModelDeployReconcileErrors",
        "ModelDeployOperatorDown",
        "ModelDeployOperatorLeaderless",
    ]
    monitor = yaml.safe_load(
        cluster.kubectl("get", "podmonitor", "modeldeploy", "-n", namespace, "-o", "yaml").stdout
    )
    assert monitor["spec"]["podMetricsEndpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "15s"}
    ]


def test_a_broken_pod_monitor_is_refused_with_the_field_named(cluster: Cluster, namespace: str) -> None:
    monitor = next(d for d in rendered(cluster, namespace) if d["kind"] == "PodMonitor")  # the operator's
    broken = copy.deepcopy(monitor)
    broken["spec"]["podMetricsEndpoints"][0]["interval"] = "every now and then"
    result = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(broken), check=False
    )
    assert result.returncode != 0
    assert "spec.podMetricsEndpoints[0].interval" in result.stderr, result.stderr
