"""The model server speaks TF Serving's gRPC ModelService on each pod, and the operator's
model gate waits for AVAILABLE."""

from __future__ import annotations

import grpc
import pytest
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

from testbed.support.wait import wait_for

from .conftest import Cluster, ModelServers, Operator, sample

pytestmark = [pytest.mark.timeout(180), pytest.mark.grpc]


def grpc_state(ip: str, model: str, version: int) -> int:
    with grpc.insecure_channel(f"{ip}:8500") as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        request.model_spec.version.value = version
        response = stub.GetModelStatus(request, timeout=5)
    (status,) = response.model_version_status
    assert status.version == version
    return int(status.state)


def test_grpc_model_status_follows_loading_and_the_gate_waits_for_it(
    cluster: Cluster, namespace: str, modelservers: ModelServers, operator: Operator
) -> None:
    modelservers.slow(1, load_seconds=4)
    cluster.create_md(namespace, sample(replicas=1))
    pod = wait_for(
        lambda: [
            p
            for p in cluster.core.list_namespaced_pod(namespace).items
            if p.status.pod_ip and p.status.phase == "Running"
        ],
        30,
        what="running pod",
    )[0]
    ip = pod.status.pod_ip
    loading = get_model_status_pb2.ModelVersionStatus.LOADING
    available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    first = wait_for(lambda: _try_state(ip), 20, what="model server gRPC up")
    if first == loading:
        labels = cluster.core.read_namespaced_pod(pod.metadata.name, namespace).metadata.labels
        assert "serving.modeldeploy.dev/model-available" not in labels, "gate opened while LOADING"
    wait_for(lambda: _try_state(ip) == available, 20, what="AVAILABLE over gRPC")
    md = cluster.wait_phase(namespace, "mnist", "Ready", timeout=30)
    assert md["status"]["stable"]["readyReplicas"] == 1


def _try_state(ip: str) -> int | None:
    try:
        return grpc_state(ip, "mnist", 1)
    except grpc.RpcError:
        return None
