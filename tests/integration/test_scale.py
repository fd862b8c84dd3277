"""The CRD's scale subresource and printer columns, read by their real consumers: kubectl scale,
a HorizontalPodAutoscaler run by the controller-manager, and kubectl get."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from testbed.support.wait import wait_for

from .conftest import Cluster, Operator
from .test_canary import canary_sample, serving_v1

pytestmark = pytest.mark.timeout(180)


def scale_of(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "md", name, "-n", namespace, "--subresource=scale", "-o", "json").stdout
    scale: dict[str, Any] = json.loads(out)
    return scale


def stable_size(cluster: Cluster, namespace: str) -> tuple[int, int]:
    deployment = cluster.apps.read_namespaced_deployment("mnist-v1", namespace)
    return deployment.spec.replicas, deployment.status.ready_replicas or 0


def test_kubectl_scale_and_an_hpa_size_the_serving_version(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    body = canary_sample()
    body["spec"]["replicas"] = 1
    serving_v1(cluster, namespace, body)
    columns = cluster.kubectl("get", "md", "mnist", "-n", namespace).stdout.splitlines()
    header, row = columns[0].split(), columns[1].split()
    assert header[:3] == ["NAME", "VERSION", "SERVING"]
    assert row[:3] == ["mnist", "1", "1"]

    cluster.kubectl("scale", "md/mnist", "--replicas=3", "-n", namespace)
    wait_for(lambda: stable_size(cluster, namespace) == (3, 3), 60, what="kubectl scale reaching the pods")
    labels = ["app.kubernetes.io/managed-by=modeldeploy", "app.kubernetes.io/name=mnist"]
    selector = ",".join([*labels, "serving.modeldeploy.dev/version=1"])
    wait_for(
        lambda: scale_of(cluster, namespace, "mnist")["status"] == {"replicas": 3, "selector": selector},
        30,
        what="the scale subresource reporting the serving pods",
    )
    pods = cluster.core.list_namespaced_pod(namespace, label_selector=selector).items
    assert len(pods) == 3

    # An HPA targeting the ModelDeployment: below its minimum it scales without metrics.
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "mnist", "namespace": namespace},
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "serving.modeldeploy.dev/v1alpha1",
                "kind": "ModelDeployment",
                "name": "mnist",
            },
            "minReplicas": 4,
            "maxReplicas": 5,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
                }
            ],
        },
    }
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(hpa))
    wait_for(
        lambda: cluster.get_md(namespace, "mnist")["spec"]["replicas"] == 4,
        60,
        what="the HPA writing spec.replicas",
    )
    wait_for(lambda: stable_size(cluster, namespace) == (4, 4), 60, what="the HPA's size reaching the pods")
    cluster.kubectl("delete", "hpa", "mnist", "-n", namespace)


def test_a_scale_beside_the_operators_own_autoscaling_is_refused(cluster: Cluster, namespace: str) -> None:
    """One autoscaler at a time: spec.autoscaling makes the operator run its own HPA, and the
    CRD refuses spec.replicas beside it, through the scale subresource too."""
    body = canary_sample("auto")
    body["spec"].pop("replicas", None)
    body["spec"]["autoscaling"] = {"minReplicas": 1, "maxReplicas": 3}
    cluster.create_md(namespace, body)
    refused = cluster.kubectl("scale", "md/auto", "--replicas=2", "-n", namespace, check=False)
    assert refused.returncode != 0
    assert "replicas and autoscaling are mutually exclusive" in refused.stderr
