"""The operator completes a full reconcile with exactly the rights manifests/ grants it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from testbed.cluster.localcluster import write_kubeconfig
from testbed.modelserver.traffic import TrafficDriver

from .conftest import REPO, Cluster, Operator
from .test_canary import canary_sample

pytestmark = pytest.mark.timeout(180)
SA_NAMESPACE, SA_NAME = "modeldeploy-system", "modeldeploy"


def service_account_kubeconfig(cluster: Cluster, path: Path) -> Path:
    cluster.kubectl("apply", "-f", str(REPO / "manifests" / "namespace.yaml"))
    cluster.kubectl("apply", "-f", str(REPO / "manifests" / "rbac.yaml"))
    token = cluster.kubectl("create", "token", SA_NAME, "-n", SA_NAMESPACE, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    server = admin["clusters"][0]["cluster"]
    write_kubeconfig(path, server["server"], Path(server["certificate-authority"]), token, user=SA_NAME)
    return path


def test_full_canary_with_manifest_rbac(
    cluster: Cluster,
    namespace: str,
    start_operator: Callable[..., Operator],
    tmp_path: Path,
    traffic: Callable[..., TrafficDriver],
) -> None:
    kubeconfig = service_account_kubeconfig(cluster, tmp_path / "sa-kubeconfig")
    op = start_operator(kubeconfig=kubeconfig)
    body = canary_sample()
    body["spec"].pop("replicas")
    body["spec"]["autoscaling"] = {"minReplicas": 2, "maxReplicas": 3}
    # Pre-traffic checks read the golden ConfigMap: the one right they add (configmaps get).
    golden = {"configMapRef": {"name": "golden", "key": "requests.jsonl"}}
    body["spec"]["rollout"]["preTraffic"] = {"warmupRequests": 2, "goldenRequests": golden}
    cluster.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "golden"}, "data": {"requests.jsonl": '{"instances": [1.0]}'}}
    )
    cluster.create_md(namespace, body)
    cluster.wait_phase(namespace, "mnist", "Ready")
    traffic()
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    md = cluster.wait_phase(namespace, "mnist", "Ready", timeout=90)
    assert md["status"]["stable"]["version"] == 2
    assert md["status"]["history"][-1]["result"] == "Promoted"
    # The promoted canary keeps its size: the operator handed its replica count to the HPA.
    dep = cluster.apps.read_namespaced_deployment("mnist-v2", namespace)
    assert dep.spec.replicas == 2
    owners = {
        m.manager for m in dep.metadata.managed_fields if "f:replicas" in str(m.fields_v1.get("f:spec", {}))
    }
    assert "modeldeploy" not in owners
    assert "Forbidden" not in op.log()
    assert " 403" not in op.log()


@pytest.mark.parametrize(
    ("verb", "resource"),
    [
        ("get", "secrets"),
        ("list", "configmaps"),
        ("update", "leases.coordination.k8s.io"),  # only its own Lease, in its own namespace
        ("create", "modeldeployments.serving.modeldeploy.dev"),
        ("create", "pods"),
        ("delete", "modeldeployments.serving.modeldeploy.dev"),
        ("update", "clusterroles"),
    ],
)
def test_operator_rights_are_least(cluster: Cluster, verb: str, resource: str) -> None:
    cluster.kubectl("apply", "-f", str(REPO / "manifests" / "namespace.yaml"))
    cluster.kubectl("apply", "-f", str(REPO / "manifests" / "rbac.yaml"))
    result = cluster.kubectl(
        "auth",
        "can-i",
        verb,
        resource,
        f"--as=system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}",
        "-A",
        check=False,
    )
    assert result.stdout.strip() == "no"
