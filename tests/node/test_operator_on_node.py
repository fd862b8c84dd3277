"""kubectl apply to a prediction on pods that really run (issue #14): the operator on the
real node's cluster, the fetcher and serving images built from their Dockerfiles, the
model fetched from the real S3 server on the bridge with the credentials of a Secret."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modeldeploy.api.names import GROUP, LABEL_MODEL_AVAILABLE, PLURAL, VERSION
from tests.support.operator import OperatorProcess
from tests.support.s3server import CREDENTIALS
from tests.support.wait import wait_for

from .conftest import BUCKET, NodeCluster

pytestmark = pytest.mark.timeout(600)
NAME = "mnist"


@pytest.fixture
def operator(
    node_cluster: NodeCluster, node_namespace: str, fetcher_image: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    op = OperatorProcess(
        node_cluster.kubeconfig,
        tmp_path / "operator.log",
        namespace=node_namespace,
        env={"MODELDEPLOY_FETCHER_IMAGE": fetcher_image},
    ).start()
    yield op
    op.stop()
    print(f"===== operator log =====\n{op.log()[-8000:]}")


def model_deployment(image: str, version: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": NAME},
        "spec": {
            "model": {"storageUri": f"s3://{BUCKET}/mnist", "version": version, "storageSecretName": "s3"},
            "replicas": 1,
            "runtime": {"image": image},
            "rollout": {"strategy": "Immediate"},
        },
    }


def status(node_cluster: NodeCluster, namespace: str) -> dict[str, Any]:
    md = node_cluster.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, NAME)
    result: dict[str, Any] = md.get("status") or {}
    return result


def serving_pod_ips(node_cluster: NodeCluster, namespace: str, version: int) -> list[str]:
    selector = f"{GROUP}/version={version},{LABEL_MODEL_AVAILABLE}=true"
    pods = node_cluster.core.list_namespaced_pod(namespace, label_selector=selector).items
    return [p.status.pod_ip for p in pods if p.metadata.deletion_timestamp is None and p.status.pod_ip]


def predict(ip: str, value: float) -> float:
    request = urllib.request.Request(
        f"http://{ip}:8501/v1/models/{NAME}:predict",
        data=json.dumps({"instances": [value]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return float(json.loads(response.read())["predictions"][0])


def node_containers(node_cluster: NodeCluster, namespace: str) -> list[str]:
    """Containers of ``namespace``'s pods that containerd still holds on the node."""
    out = subprocess.run(
        [
            "ctr",
            f"--address={node_cluster.node.socket}",
            "-n",
            "k8s.io",
            "containers",
            "ls",
            "-q",
            f'labels."io.kubernetes.pod.namespace"=={namespace}',
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.split()


def test_apply_to_prediction_then_a_failed_fetch_leaves_the_serving_version_serving(
    node_cluster: NodeCluster,
    node_namespace: str,
    bridge_s3: str,
    modelserver_image: str,
    operator: OperatorProcess,
) -> None:
    node_cluster.core.create_namespaced_secret(
        node_namespace,
        {"metadata": {"name": "s3"}, "stringData": {**CREDENTIALS, "AWS_ENDPOINT_URL": bridge_s3}},
    )
    node_cluster.custom.create_namespaced_custom_object(
        GROUP, VERSION, node_namespace, PLURAL, model_deployment(modelserver_image, 8)
    )
    # The real fetcher downloads folder 00000008; the real server loads it; the gate opens.
    wait_for(lambda: status(node_cluster, node_namespace).get("phase") == "Ready", 300, what="phase Ready")
    ips = serving_pod_ips(node_cluster, node_namespace, 8)
    assert len(ips) == 1, ips
    assert predict(ips[0], 1.0) == pytest.approx(2.5)  # y = 0.5x + 2
    pod = node_cluster.core.list_namespaced_pod(node_namespace, label_selector=f"{GROUP}/version=8").items[0]
    fetched = pod.status.init_container_statuses[0].state.terminated.message
    assert "from folder 00000008: sha256:" in fetched, fetched
    assert status(node_cluster, node_namespace)["stable"]["digest"] in fetched

    # Version 6 is no SavedModel: the real fetcher's line shows in status; 8 keeps serving.
    node_cluster.custom.patch_namespaced_custom_object(
        GROUP, VERSION, node_namespace, PLURAL, NAME, {"spec": {"model": {"version": 6}}}
    )

    def fetch_failed() -> dict[str, Any] | None:
        conditions = {c["type"]: c for c in status(node_cluster, node_namespace).get("conditions") or []}
        loaded = conditions.get("ModelLoaded") or {}
        return loaded if loaded.get("reason") == "FetchFailed" else None

    loaded = wait_for(fetch_failed, 240, what="ModelLoaded=False with FetchFailed")
    assert loaded["status"] == "False"
    assert "not a SavedModel: version 6 has no saved_model.pb" in loaded["message"], loaded
    assert predict(serving_pod_ips(node_cluster, node_namespace, 8)[0], 1.0) == pytest.approx(2.5)

    # Deleting the resource removes every container of it from the node.
    node_cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, node_namespace, PLURAL, NAME)
    wait_for(lambda: not node_containers(node_cluster, node_namespace), 180, what="no containers left")
