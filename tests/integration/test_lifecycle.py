"""The sample on a real API server: Ready, Immediate roll, garbage collection, HPA, failures."""

from __future__ import annotations

import pytest

from testbed.support.wait import wait_for

from .conftest import Cluster, Operator, sample

pytestmark = pytest.mark.timeout(180)


def test_sample_becomes_ready_with_owned_children(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    cluster.create_md(namespace, sample())
    md = cluster.wait_phase(namespace, "mnist", "Ready")
    status = md["status"]
    assert status["observedGeneration"] == md["metadata"]["generation"]
    assert status["stable"] == {"version": 1, "replicas": 2, "readyReplicas": 2}
    assert status["ready"] == "2/2"
    assert status["endpoints"]["grpc"] == f"mnist.{namespace}.svc:8500"
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {
        "Ready": "True",
        "Available": "True",
        "Progressing": "False",
        "Degraded": "False",
        "ModelLoaded": "True",
        "CanaryHealthy": "True",
        "Reconciling": "False",  # kstatus: Current
        "Stalled": "False",
    }
    assert cluster.children(namespace, "mnist") == {
        "deployments": ["mnist-v1"],
        "services": ["mnist"],
        "configmaps": ["mnist-v1-config"],
    }
    # The Deployment's own status follows its pods' readiness gates a moment after the operator.
    dep = wait_for(
        lambda: (
            (d := cluster.apps.read_namespaced_deployment("mnist-v1", namespace)).status.ready_replicas == 2
            and d
        ),
        30,
        what="the Deployment's own status at 2 ready",
    )
    (owner,) = dep.metadata.owner_references
    assert owner.kind == "ModelDeployment"
    assert owner.uid == md["metadata"]["uid"]
    assert owner.controller
    # Pods got loopback IPs from kwok: nothing here points at a private range.
    pods = cluster.core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/name=mnist").items
    assert pods
    assert all(p.status.pod_ip.startswith("127.") for p in pods)
    assert cluster.wait_event(namespace, "mnist", "Ready") == ("Normal", "Ready", "version 1 is ready")
    printed = cluster.kubectl("get", "md", "-n", namespace).stdout
    assert printed.split("\n")[0].split() == [
        "NAME",
        "VERSION",
        "SERVING",
        "CANARY",
        "WEIGHT",
        "SHARE",
        "READY",
        "PHASE",
        "AGE",
    ]
    row = printed.split("\n")[1].split()
    assert "Ready" in row
    assert row[1:3] == ["1", "1"], "the requested version, and the version that serves"


def test_a_new_resources_pods_are_started_before_its_service(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    """Creating a Service allocates a ClusterIP, which a busy API server took over a
    second to do: the version's ConfigMap and Deployment go first, so pods start meanwhile."""
    cluster.create_md(namespace, sample())
    cluster.wait_phase(namespace, "mnist", "Ready")
    config = cluster.core.read_namespaced_config_map("mnist-v1-config", namespace)
    service = cluster.core.read_namespaced_service("mnist", namespace)
    # Neither is written again after its creation, and on this etcd-backed API server
    # resourceVersions are the store's increasing revisions: they give the order.
    assert int(config.metadata.resource_version) < int(service.metadata.resource_version)


def test_a_deleted_deployment_is_made_again(cluster: Cluster, namespace: str, operator: Operator) -> None:
    """The operator watches the children it applies: one deleted behind its back comes
    back at once, not at the next full re-check (10 minutes by default)."""
    cluster.create_md(namespace, sample())
    cluster.wait_phase(namespace, "mnist", "Ready")
    before = cluster.apps.read_namespaced_deployment("mnist-v1", namespace).metadata.uid
    cluster.apps.delete_namespaced_deployment("mnist-v1", namespace)

    def recreated_and_ready() -> bool:
        found = cluster.apps.list_namespaced_deployment(namespace, field_selector="metadata.name=mnist-v1")
        return any(d.metadata.uid != before and d.status.ready_replicas == 2 for d in found.items)

    wait_for(recreated_and_ready, 60, what="mnist-v1 made again and ready")
    md = cluster.wait_phase(namespace, "mnist", "Ready")
    assert md["status"]["stable"] == {"version": 1, "replicas": 2, "readyReplicas": 2}


def test_immediate_version_change_rolls_the_deployment(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    cluster.create_md(namespace, sample(rollout={"strategy": "Immediate", "progressDeadlineSeconds": 120}))
    cluster.wait_phase(namespace, "mnist", "Ready")
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    md = cluster.wait_phase(namespace, "mnist", "Ready")
    assert md["status"]["stable"]["version"] == 2
    wait_for(
        lambda: cluster.children(namespace, "mnist")["deployments"] == ["mnist-v2"],
        30,
        what="old version retired",
    )
    assert cluster.children(namespace, "mnist")["configmaps"] == ["mnist-v2-config"]
    assert md["status"]["history"][-1]["version"] == 2
    assert md["status"]["history"][-1]["result"] == "Promoted"
    cluster.wait_event(namespace, "mnist", "VersionRolled")
    config = cluster.core.read_namespaced_config_map("mnist-v2-config", namespace)
    assert "versions: 2" in config.data["models.config"]


def test_deleting_the_resource_garbage_collects_every_child(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    cluster.create_md(namespace, sample())
    cluster.wait_phase(namespace, "mnist", "Ready")
    cluster.custom.delete_namespaced_custom_object(
        "serving.modeldeploy.dev", "v1alpha1", namespace, "modeldeployments", "mnist"
    )
    empty: dict[str, list[str]] = {"deployments": [], "services": [], "configmaps": []}
    wait_for(lambda: cluster.children(namespace, "mnist") == empty, 60, what="children collected")
    # Pods then honour their grace period (the kubelet's job, kwok's here): gone or terminating.
    wait_for(
        lambda: all(p.metadata.deletion_timestamp for p in cluster.core.list_namespaced_pod(namespace).items),
        60,
        what="pods terminating",
    )


def test_autoscaling_creates_an_hpa_and_leaves_replicas_to_it(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    cluster.create_md(namespace, sample(replicas=None, autoscaling={"minReplicas": 2, "maxReplicas": 5}))
    cluster.wait_phase(namespace, "mnist", "Ready", timeout=90)
    hpa = cluster.kubectl(
        "get", "hpa", "mnist", "-n", namespace, "-o", "jsonpath={.spec.scaleTargetRef.name}"
    )
    assert hpa.stdout == "mnist-v1"
    dep = cluster.apps.read_namespaced_deployment("mnist-v1", namespace)
    ours = [m for m in dep.metadata.managed_fields if m.manager == "modeldeploy"]
    assert ours
    assert all("f:replicas" not in str(m.fields_v1.get("f:spec", {})) for m in ours)
    # A new version under the HPA starts at the serving size (not 1), the count handed to the HPA.
    cluster.patch_md(
        namespace, "mnist", {"spec": {"model": {"version": 2}, "rollout": {"strategy": "Immediate"}}}
    )
    md = cluster.wait_phase(namespace, "mnist", "Ready", timeout=90)
    assert md["status"]["stable"]["version"] == 2
    dep = cluster.apps.read_namespaced_deployment("mnist-v2", namespace)
    assert dep.spec.replicas == 2
    owners = {
        m.manager for m in dep.metadata.managed_fields if "f:replicas" in str(m.fields_v1.get("f:spec", {}))
    }
    assert "modeldeploy" not in owners
    assert "modeldeploy-handover" in owners or "kube-controller-manager" in owners
    # Back to a fixed count: the HPA goes.
    cluster.patch_md(namespace, "mnist", {"spec": {"autoscaling": None, "replicas": 1}})
    wait_for(
        lambda: cluster.kubectl("get", "hpa", "-n", namespace, "-o", "name").stdout.strip() == "",
        30,
        what="HPA removed",
    )


def test_fetch_failure_shows_as_model_not_loaded(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    cluster.create_md(namespace, sample(model={"storageUri": "file:///kwok-fetch-fails/model", "version": 4}))

    def not_loaded() -> dict[str, str] | None:
        cond = cluster.condition(namespace, "mnist", "ModelLoaded")
        return cond if cond and cond["status"] == "False" and cond["reason"] == "FetchFailed" else None

    cond = wait_for(not_loaded, 60, what="ModelLoaded=False")
    assert "version 4 not found: file:///kwok-fetch-fails/model/4/ does not exist" in cond["message"]
    md = cluster.get_md(namespace, "mnist")
    assert md["status"]["phase"] == "Failed"
    cluster.wait_event(namespace, "mnist", "ModelFetchFailed", "Warning")


def test_a_version_that_cannot_load_never_replaces_a_healthy_one(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    cluster.create_md(namespace, sample(rollout={"strategy": "Immediate", "progressDeadlineSeconds": 120}))
    cluster.wait_phase(namespace, "mnist", "Ready")
    cluster.patch_md(
        namespace,
        "mnist",
        {"spec": {"model": {"storageUri": "file:///kwok-fetch-fails/model", "version": 2}}},
    )
    md = cluster.wait_phase(namespace, "mnist", "Degraded")
    assert md["status"]["stable"]["version"] == 1
    assert md["status"]["stable"]["readyReplicas"] == 2
    degraded = cluster.condition(namespace, "mnist", "Degraded")
    assert degraded is not None
    assert degraded["reason"] == "ModelFetchFailed"
    assert "mnist-v1" in cluster.children(namespace, "mnist")["deployments"]
    assert cluster.apps.read_namespaced_deployment("mnist-v1", namespace).status.ready_replicas == 2


def test_a_spec_the_schema_allows_but_serving_cannot_is_degraded_and_others_carry_on(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    bad = sample("bad", runtime={"args": ["--port=9000"]})
    cluster.create_md(namespace, bad)
    cluster.create_md(namespace, sample("good"))
    md = cluster.wait_phase(namespace, "bad", "Degraded")
    degraded = next(c for c in md["status"]["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "InvalidSpec"
    assert "spec.runtime.args: --port=9000 is set by the operator" in degraded["message"]
    cluster.wait_event(namespace, "bad", "InvalidSpec", "Warning")
    assert cluster.children(namespace, "bad")["deployments"] == []
    cluster.wait_phase(namespace, "good", "Ready")
    # Fixing the spec recovers it.
    cluster.patch_md(namespace, "bad", {"spec": {"runtime": {"args": []}}})
    cluster.wait_phase(namespace, "bad", "Ready")


def test_network_policy_follows_the_spec(cluster: Cluster, namespace: str, operator: Operator) -> None:
    cluster.create_md(namespace, sample(runtime={"networkPolicy": True}))
    cluster.wait_phase(namespace, "mnist", "Ready")

    def policy_ports() -> list[int]:
        out = cluster.kubectl(
            "get",
            "networkpolicy",
            "-n",
            namespace,
            "-o",
            "jsonpath={.items[*].spec.ingress[*].ports[*].port}",
        ).stdout
        return sorted(int(p) for p in out.split())

    assert wait_for(policy_ports, 30, what="NetworkPolicy") == [8500, 8501]
    cluster.patch_md(namespace, "mnist", {"spec": {"runtime": {"networkPolicy": False}}})
    wait_for(lambda: policy_ports() == [], 30, what="NetworkPolicy removed")
