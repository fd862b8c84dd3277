"""The operator as users install it: its image built from the project's
Dockerfile, installed by manifests/ as `kubectl apply -k` renders them and by the Helm chart
with `helm install`, running as pods on the real node under the install's own security
context and RBAC, takes a ModelDeployment to a prediction. The runtime itself shows that
the pods run as the installs promise: checked inside the running containers, not read back
from their specs."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from modeldeploy.api.names import SERVING_CONTAINER, SERVING_UID
from testbed.cluster.operator_manifests import OPERATOR_NAMESPACE, operator_manifests
from testbed.support.kube import kubectl_path
from testbed.support.tools import helm as run_helm
from testbed.support.wait import wait_for

from .conftest import NodeCluster
from .test_operator_on_node import apply_and_wait_ready, predict, serving_pod_ips

pytestmark = pytest.mark.timeout(600)
REPO = Path(__file__).resolve().parents[2]
OPERATOR_UID = 65532  # manifests/operator.yaml and the Dockerfile's USER


def kubectl(node_cluster: NodeCluster, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        [str(kubectl_path()), f"--kubeconfig={node_cluster.kubeconfig}", *args],
        input=stdin,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


HELM_NAMESPACE = "modeldeploy-helm"  # the chart's release, beside the kustomize install


@dataclass(frozen=True)
class OperatorPod:
    namespace: str  # where the operator's pods and Lease live
    name: str  # a Ready replica


def install_with_kustomize(node_cluster: NodeCluster, watched: str) -> str:
    """manifests/ applied as they ship, but for the API server's address on the bridge and
    the operator confined to the test's namespace (other tests run operators of their own)."""
    manifests = operator_manifests(kubectl_path(), node_cluster.node.api_server_env(), watched)
    kubectl(node_cluster, "apply", "-f", "-", stdin=manifests)
    return OPERATOR_NAMESPACE


def helm(node_cluster: NodeCluster, *args: str) -> str:
    return run_helm(node_cluster.kubeconfig, *args).stdout


def install_with_helm(node_cluster: NodeCluster, watched: str, values: Path) -> str:
    """charts/modeldeploy installed by helm with the same two fittings as values (and the CRD left
    to the cluster, which has it already)."""
    values.write_text(
        yaml.safe_dump(
            {
                "watchNamespaces": [watched],
                "extraEnv": node_cluster.node.api_server_env(),
                "crds": {"install": False},  # kubectl applied the cluster's CRD
            }
        )
    )
    helm(
        node_cluster,
        "install",
        "md",
        str(REPO / "charts" / "modeldeploy"),
        "-n",
        HELM_NAMESPACE,
        "--create-namespace",
        "-f",
        str(values),
    )
    return HELM_NAMESPACE


@pytest.fixture(params=["kustomize", "helm"])
def operator_pod(
    request: pytest.FixtureRequest,
    node_cluster: NodeCluster,
    node_namespace: str,
    operator_image: str,
    tmp_path: Path,
) -> Iterator[OperatorPod]:
    if request.param == "kustomize":
        namespace = install_with_kustomize(node_cluster, node_namespace)
    else:
        namespace = install_with_helm(node_cluster, node_namespace, tmp_path / "values.yaml")
    name = wait_for(lambda: _ready_operator_pod(node_cluster, namespace), 180, what="the operator pod Ready")
    yield OperatorPod(namespace, name)
    log = subprocess.run(
        [str(kubectl_path()), f"--kubeconfig={node_cluster.kubeconfig}", "-n", namespace, "logs", name],
        capture_output=True,
        text=True,
        timeout=60,
    )
    print(f"===== operator pod log =====\n{(log.stdout + log.stderr)[-8000:]}")
    if request.param == "kustomize":
        kubectl(node_cluster, "-n", namespace, "delete", "deployment", "modeldeploy", "--wait=true")
    else:
        helm(node_cluster, "uninstall", "md", "-n", namespace, "--wait")
    wait_for(
        lambda: not node_cluster.core.list_namespaced_pod(namespace).items, 120, what="the operator pods gone"
    )


def _ready_operator_pod(node_cluster: NodeCluster, namespace: str) -> str | None:
    for pod in node_cluster.core.list_namespaced_pod(namespace).items:
        statuses = pod.status.container_statuses or []
        if pod.metadata.deletion_timestamp is None and statuses and statuses[0].ready:
            return str(pod.metadata.name)
    return None


def inside(node_cluster: NodeCluster, container_id: str, script: str) -> str:
    """Run ``script`` in a running container as its own process would (same user, same
    mounts): containerd's exec, the way `kubectl exec` reaches it."""
    out = node_cluster.node.ctr(
        "tasks",
        "exec",
        "--exec-id",
        f"probe-{container_id[:8]}",
        container_id,
        "sh",
        "-c",
        script,
        check=False,
    )
    return out.stdout + out.stderr


def container_id(pod: Any, name: str) -> str:
    found = next(s for s in pod.status.container_statuses if s.name == name)
    return str(found.container_id).removeprefix("containerd://")


def uid_and_root_write(node_cluster: NodeCluster, cid: str) -> tuple[int, str]:
    out = inside(node_cluster, cid, "id -u; touch /written-by-a-test 2>&1 || echo refused")
    lines = out.strip().splitlines()
    return int(lines[0]), "\n".join(lines[1:])


def test_the_operator_pod_from_the_shipped_manifests_serves_a_model_on_the_real_node(
    node_cluster: NodeCluster,
    node_namespace: str,
    bridge_s3: str,
    modelserver_image: str,
    fetcher_image: str,
    operator_pod: OperatorPod,
) -> None:
    # The operator runs as the manifest says: its uid, a root it cannot write.
    pod = node_cluster.core.read_namespaced_pod(operator_pod.name, operator_pod.namespace)
    uid, write = uid_and_root_write(node_cluster, container_id(pod, "operator"))
    assert uid == OPERATOR_UID
    assert "Read-only file system" in write, write

    # From the Secret and the ModelDeployment to a prediction through the pod's IP.
    apply_and_wait_ready(node_cluster, node_namespace, bridge_s3, modelserver_image)
    # Two replicas as shipped; the one leading holds the Lease with its pod name (the
    # Role's rights on the Lease suffice).
    coordination = kubernetes.client.CoordinationV1Api(node_cluster.api)
    lease = coordination.read_namespaced_lease("modeldeploy-operator", operator_pod.namespace)
    replicas = {p.metadata.name for p in node_cluster.core.list_namespaced_pod(operator_pod.namespace).items}
    assert len(replicas) == 2, replicas
    assert lease.spec.holder_identity in replicas
    ips = serving_pod_ips(node_cluster, node_namespace, 8)
    assert len(ips) == 1, ips
    assert predict(ips[0], 3.0) == pytest.approx(3.5)  # y = 0.5x + 2

    # The serving pod the operator built runs as it promises: uid 1000, read-only root.
    serving = next(
        p for p in node_cluster.core.list_namespaced_pod(node_namespace).items if p.status.pod_ip == ips[0]
    )
    uid, write = uid_and_root_write(node_cluster, container_id(serving, SERVING_CONTAINER))
    assert uid == SERVING_UID
    assert "Read-only file system" in write, write
    assert write.endswith("refused"), write
