"""kubectl apply to a prediction on pods that really run: the operator on the
real node's cluster, the fetcher and serving images built from their Dockerfiles, the
model fetched from the real S3 server on the bridge with the credentials of a Secret."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modeldeploy.api.names import GROUP, LABEL_MODEL_AVAILABLE, PLURAL, SERVING_CONTAINER, VERSION
from testbed.modelserver.traffic import TrafficDriver
from testbed.support.operator import OperatorProcess
from testbed.support.s3server import CREDENTIALS
from testbed.support.wait import wait_for

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


def model_deployment(image: str, version: int, rollout: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": NAME},
        "spec": {
            "model": {"storageUri": f"s3://{BUCKET}/mnist", "version": version, "storageSecretName": "s3"},
            "replicas": 1,
            "runtime": {"image": image},
            "rollout": rollout or {"strategy": "Immediate"},
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
    out = node_cluster.node.ctr(
        "containers", "ls", "-q", f'labels."io.kubernetes.pod.namespace"=={namespace}'
    ).stdout
    return out.split()


def apply_and_wait_ready(
    node_cluster: NodeCluster,
    namespace: str,
    s3_endpoint: str,
    image: str,
    rollout: dict[str, Any] | None = None,
) -> None:
    """The storage Secret and a ModelDeployment at version 8, applied; back once it is Ready."""
    node_cluster.core.create_namespaced_secret(
        namespace,
        {"metadata": {"name": "s3"}, "stringData": {**CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint}},
    )
    node_cluster.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, model_deployment(image, 8, rollout)
    )
    wait_for(lambda: status(node_cluster, namespace).get("phase") == "Ready", 300, what="phase Ready")


def test_apply_to_prediction_then_a_failed_fetch_leaves_the_serving_version_serving(
    node_cluster: NodeCluster,
    node_namespace: str,
    bridge_s3: str,
    modelserver_image: str,
    operator: OperatorProcess,
) -> None:
    # The real fetcher downloads folder 00000008; the real server loads it; the gate opens.
    apply_and_wait_ready(node_cluster, node_namespace, bridge_s3, modelserver_image)
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


def model_state(ip: str, version: int) -> str:
    """What the pod's server says of ``version`` right now ("down" when it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://{ip}:8501/v1/models/{NAME}/versions/{version}", timeout=2) as r:
            return str(json.loads(r.read())["model_version_status"][0]["state"])
    except (OSError, ValueError, KeyError, IndexError):
        return "down"


def test_a_killed_serving_container_is_out_of_service_until_its_model_is_available_again(
    node_cluster: NodeCluster,
    node_namespace: str,
    bridge_s3: str,
    modelserver_image: str,
    operator: OperatorProcess,
) -> None:
    apply_and_wait_ready(node_cluster, node_namespace, bridge_s3, modelserver_image)
    pod = node_cluster.core.list_namespaced_pod(node_namespace, label_selector=f"{GROUP}/version=8").items[0]
    name, ip = pod.metadata.name, pod.status.pod_ip
    serving = next(c for c in pod.status.container_statuses if c.name == SERVING_CONTAINER)
    restarts = serving.restart_count
    container = serving.container_id.split("://", 1)[1]
    node_cluster.node.ctr("tasks", "kill", "-s", "SIGKILL", container)
    closed_after_restart = False

    def serving_again() -> bool:
        nonlocal closed_after_restart
        p = node_cluster.core.read_namespaced_pod(name, node_namespace)
        current = next(c for c in p.status.container_statuses if c.name == SERVING_CONTAINER)
        labelled = (p.metadata.labels or {}).get(LABEL_MODEL_AVAILABLE) == "true"
        ready = any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        state = model_state(ip, 8)
        restarted = current.restart_count > restarts
        # The model the gate was opened for died with the process: until the new process
        # has it AVAILABLE (3 s of LOADING in this image), the pod takes no traffic.
        assert not (restarted and labelled and ready and state != "AVAILABLE"), (labelled, ready, state)
        closed_after_restart |= restarted and not labelled
        return restarted and labelled and ready and state == "AVAILABLE"

    wait_for(serving_again, 180, interval=0.1, what="the restarted pod serving again")
    assert closed_after_restart, "the gate never closed after the serving container restarted"
    assert predict(ip, 1.0) == pytest.approx(2.5)


CANARY = {
    "strategy": "Canary",
    "steps": [{"weight": 50, "pause": "6s"}],
    "analysis": {"interval": "2s", "failureLimit": 1, "minRequests": 5, "successRate": {"min": 0.9}},
    "progressDeadlineSeconds": 240,
}


def rolled_out(node_cluster: NodeCluster, namespace: str, version: int) -> dict[str, Any]:
    """The status once a rollout to ``version`` has ended (promoted or rolled back)."""

    def ended() -> dict[str, Any] | None:
        current = status(node_cluster, namespace)
        history = current.get("history") or []
        done = history and history[-1].get("version") == version and not current.get("canary")
        return current if done else None

    result: dict[str, Any] = wait_for(ended, 300, what=f"the rollout of version {version} ended")
    return result


def test_canaries_on_real_pods_promote_a_healthy_version_and_roll_back_one_tensorflow_refuses(
    node_cluster: NodeCluster,
    node_namespace: str,
    bridge_s3: str,
    modelserver_image: str,
    operator: OperatorProcess,
) -> None:
    apply_and_wait_ready(node_cluster, node_namespace, bridge_s3, modelserver_image, CANARY)
    # Traffic as the Service routes it, to the pods' IPs on the bridge; x = 6 is refused by
    # version 10's graph (tf.debugging), so half its requests fail for real.
    driver = TrafficDriver(node_cluster.api, node_namespace, NAME, NAME, rps=20, inputs=(1.0, 6.0)).start()
    try:
        node_cluster.custom.patch_namespaced_custom_object(
            GROUP, VERSION, node_namespace, PLURAL, NAME, {"spec": {"model": {"version": 9}}}
        )
        promoted = rolled_out(node_cluster, node_namespace, 9)
        assert promoted["history"][-1]["result"] == "Promoted", promoted["history"]
        assert promoted["stable"]["version"] == 9
        assert predict(serving_pod_ips(node_cluster, node_namespace, 9)[0], 1.0) == pytest.approx(3.5)

        node_cluster.custom.patch_namespaced_custom_object(
            GROUP, VERSION, node_namespace, PLURAL, NAME, {"spec": {"model": {"version": 10}}}
        )
        rolled_back = rolled_out(node_cluster, node_namespace, 10)
        assert rolled_back["history"][-1]["result"] == "RolledBack", rolled_back["history"]
        assert rolled_back["failedVersions"] == [10]
        assert rolled_back["stable"]["version"] == 9
        assert driver.failed[10] > 0, "version 10 refused requests for real"
        assert predict(serving_pod_ips(node_cluster, node_namespace, 9)[0], 1.0) == pytest.approx(3.5)
    finally:
        driver.stop()


def test_golden_requests_on_real_pods_keep_a_version_with_other_answers_from_any_user(
    node_cluster: NodeCluster,
    node_namespace: str,
    bridge_s3: str,
    modelserver_image: str,
    operator: OperatorProcess,
) -> None:
    """Golden requests on the real node: version 9 (y = 0.5x + 3) answers the golden requests made
    for version 8 (y = 0.5x + 2) wrongly, so it is rolled back before any routed request."""
    golden = "\n".join(json.dumps({"instances": [x], "expected": [0.5 * x + 2]}) for x in (1.0, 4.0))
    node_cluster.core.create_namespaced_config_map(
        node_namespace, {"metadata": {"name": "golden"}, "data": {"requests.jsonl": golden}}
    )
    checks = {
        "warmupRequests": 3,
        "goldenRequests": {"configMapRef": {"name": "golden", "key": "requests.jsonl"}},
    }
    apply_and_wait_ready(
        node_cluster, node_namespace, bridge_s3, modelserver_image, {**CANARY, "preTraffic": checks}
    )
    driver = TrafficDriver(node_cluster.api, node_namespace, NAME, NAME, rps=20).start()
    try:
        node_cluster.custom.patch_namespaced_custom_object(
            GROUP, VERSION, node_namespace, PLURAL, NAME, {"spec": {"model": {"version": 9}}}
        )
        rolled_back = rolled_out(node_cluster, node_namespace, 9)
    finally:
        driver.stop()
    entry = rolled_back["history"][-1]
    assert entry["result"] == "RolledBack", entry
    assert entry["reason"].startswith("GoldenRequestsFailed: version 9: 2 of 2 golden answers wrong"), entry
    assert "expected 2.5, got 3.5" in entry["reason"], entry
    assert rolled_back["stable"]["version"] == 8
    assert driver.sent.get(9, 0) == 0, "version 9 answered a routed request"
    assert predict(serving_pod_ips(node_cluster, node_namespace, 8)[0], 1.0) == pytest.approx(2.5)
