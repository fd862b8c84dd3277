"""Canary rollouts on the real control plane, against the TF Serving-compatible model server
running real SavedModels, with real traffic."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from modeldeploy.api.names import GROUP, PLURAL, VERSION
from modeldeploy.api.times import parse_time
from testbed.modelserver.traffic import TrafficDriver
from testbed.support.kube import changes_since
from testbed.support.wait import holds_for, wait_for

from .conftest import Cluster, ModelServers, Operator, sample

pytestmark = pytest.mark.timeout(240)

FAST_ROLLOUT: dict[str, Any] = {
    "strategy": "Canary",
    "steps": [{"weight": 20, "pause": "2s"}, {"weight": 50, "pause": "2s"}],
    "analysis": {
        "interval": "1s",
        "failureLimit": 2,
        "minRequests": 5,
        "successRate": {"min": 0.9},
        "latencyP99Ms": {"max": 250},
    },
    "progressDeadlineSeconds": 60,
}


def canary_sample(name: str = "mnist", **rollout: Any) -> dict[str, Any]:
    # A deep copy: a test that edits its body (its analysis, say) must not edit the next test's.
    return sample(name, rollout=copy.deepcopy({**FAST_ROLLOUT, **rollout}))


def serving_v1(cluster: Cluster, namespace: str, body: dict[str, Any]) -> None:
    """Create the resource at version 1 (first rollouts are immediate) and wait until it serves."""
    cluster.create_md(namespace, body)
    cluster.wait_phase(namespace, body["metadata"]["name"], "Ready")


def canary(cluster: Cluster, namespace: str, name: str = "mnist") -> dict[str, Any] | None:
    result: dict[str, Any] | None = (cluster.get_md(namespace, name).get("status") or {}).get("canary")
    return result


def plugin(cluster: Cluster, namespace: str, *args: str, exit_codes: tuple[int, ...] = (0,)) -> str:
    """The plugin's output; ``status`` exits by the rollout's state (2: not ended yet)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "modeldeploy.cli.main",
            *args,
            "-n",
            namespace,
            f"--kubeconfig={cluster.kubeconfig}",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode in exit_codes, result.stdout + result.stderr
    return result.stdout


def pods_of(cluster: Cluster, namespace: str, version: int) -> set[str]:
    selector = f"serving.modeldeploy.dev/version={version}"
    return {
        p.metadata.uid
        for p in cluster.core.list_namespaced_pod(namespace, label_selector=selector).items
        if p.metadata.deletion_timestamp is None
    }


def writes_since(list_fn: Callable[..., Any], name: str, resource_version: str, *args: str) -> list[Any]:
    """Every write of one object since ``resource_version``, in order."""
    return [
        event["object"]
        for event in changes_since(
            list_fn, resource_version, 1, *args, field_selector=f"metadata.name={name}"
        )
    ]


def test_healthy_canary_is_promoted_through_every_step_without_restarting_its_pods(
    cluster: Cluster, namespace: str, operator: Operator, traffic: Callable[..., TrafficDriver]
) -> None:
    serving_v1(cluster, namespace, canary_sample())
    driver = traffic()
    since = cluster.get_md(namespace, "mnist")["metadata"]["resourceVersion"]
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    first = wait_for(
        lambda: (c := canary(cluster, namespace)) and c.get("stepStartedAt") and c,
        30,
        what="canary step 1 serving",
    )
    assert first["version"] == 2
    assert first["weight"] == 20
    # A Service splits by pods: one canary pod beside two stable ones gets a third.
    assert first["trafficShare"] == 0.33
    assert first["step"] == 0
    canary_pods = pods_of(cluster, namespace, 2)
    md = cluster.get_md(namespace, "mnist")
    assert {c["type"]: c["reason"] for c in md["status"]["conditions"]}["Progressing"] == "CanaryProgressing"
    assert md["status"]["stable"]["version"] == 1
    second = wait_for(
        lambda: (c := canary(cluster, namespace)) and c["step"] == 1 and c.get("stepStartedAt") and c,
        30,
        what="step 2 serving",
    )
    # Step 2 starts after step 1's pause (2s), with its own start time.
    step_gap = parse_time(second["stepStartedAt"]) - parse_time(first["stepStartedAt"])
    assert step_gap.total_seconds() >= 2
    md = cluster.wait_phase(namespace, "mnist", "Ready", timeout=60)
    status = md["status"]
    # The last step held for its pause (2s) too; history times are whole seconds, so allow 1s.
    promoted_at = parse_time(status["history"][-1]["at"])
    assert (promoted_at - parse_time(second["stepStartedAt"])).total_seconds() >= 2 - 1
    assert status["stable"]["version"] == 2
    assert "canary" not in status
    assert status["history"][-1]["result"] == "Promoted"
    assert "passed 2 step(s)" in status["history"][-1]["reason"]
    assert canary_pods <= pods_of(cluster, namespace, 2), "promotion restarted the canary's pods"
    wait_for(
        lambda: cluster.children(namespace, "mnist")["deployments"] == ["mnist-v2"], 30, what="v1 removed"
    )
    dep = cluster.apps.read_namespaced_deployment("mnist-v2", namespace)
    assert dep.metadata.labels["serving.modeldeploy.dev/track"] == "stable"
    # Promotion is one move to Ready. The write that relabels the canary stable must not
    # move its Deployment's generation (annotations do, labels do not): until the controller
    # caught up, the version was "not rolled out", and status went Ready, Progressing, Ready
    # again, with a second Ready event.
    writes = writes_since(cluster.apps.list_namespaced_deployment, "mnist-v2", since, namespace)
    tracks = [(d.metadata.labels["serving.modeldeploy.dev/track"], d.metadata.generation) for d in writes]
    relabelled = [t[0] for t in tracks].index("stable")
    assert tracks[relabelled][1] == tracks[relabelled - 1][1], tracks
    phases = [
        ((md.get("status") or {}).get("phase"), ((md.get("status") or {}).get("stable") or {}).get("version"))
        for md in writes_since(
            cluster.custom.list_namespaced_custom_object, "mnist", since, GROUP, VERSION, namespace, PLURAL
        )
    ]
    promoted = phases.index(("Ready", 2))
    assert phases[promoted:] == [("Ready", 2)] * len(phases[promoted:]), phases
    ready_events = [e for e in cluster.events(namespace, "mnist") if e[1:] == ("Ready", "version 2 is ready")]
    assert len(ready_events) == 1, ready_events
    assert driver.counts().get(2, 0) > 0
    assert driver.counts().get(1, 0) > 0
    for reason in ("CanaryStarted", "CanaryStep", "VersionRolled"):
        cluster.wait_event(namespace, "mnist", reason)


def test_erroring_canary_is_rolled_back_and_not_rolled_again_until_retry(
    cluster: Cluster,
    namespace: str,
    operator: Operator,
    modelservers: ModelServers,
    traffic: Callable[..., TrafficDriver],
) -> None:
    serving_v1(cluster, namespace, canary_sample())
    # Version 3's graph refuses inputs >= 5 (a tf.debugging assertion): half of these.
    driver = traffic(inputs=(1.0, 9.0))
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 3}}})
    md = cluster.wait_phase(namespace, "mnist", "Degraded", timeout=60)
    status = md["status"]
    assert status["failedVersions"] == [3]
    assert status["stable"]["version"] == 1
    assert status["stable"]["readyReplicas"] == 2
    entry = status["history"][-1]
    assert entry["result"] == "RolledBack"
    # Half the requests fail with TensorFlow's InvalidArgument; an interval sees close to half.
    match = re.search(r"success rate (\d\.\d+) < 0.9", entry["reason"])
    assert match is not None, entry
    assert 0.35 < float(match.group(1)) < 0.65
    healthy = next(c for c in status["conditions"] if c["type"] == "CanaryHealthy")
    assert healthy["status"] == "False"
    assert "success rate" in healthy["message"]
    wait_for(
        lambda: cluster.children(namespace, "mnist")["deployments"] == ["mnist-v1"], 30, what="canary removed"
    )
    cluster.wait_event(namespace, "mnist", "RolledBack", "Warning")
    assert driver.failed[3] > 0
    assert driver.failed[1] == 0, "version 1 answers every input"

    # A GitOps re-sync (same version, any other spec change) does not roll version 3 again.
    md = cluster.patch_md(namespace, "mnist", {"spec": {"rollout": {"progressDeadlineSeconds": 61}}})
    md = cluster.wait_phase(namespace, "mnist", "Degraded")
    assert md["status"]["observedGeneration"] == md["metadata"]["generation"]
    assert cluster.children(namespace, "mnist")["deployments"] == ["mnist-v1"]

    # Clients stop sending what version 3 refuses; then the retry annotation: rolled out.
    driver.inputs = (1.0, 2.0)
    plugin(cluster, namespace, "retry", "mnist")
    md = cluster.wait_phase(namespace, "mnist", "Ready", timeout=90)
    assert md["status"]["stable"]["version"] == 3
    assert driver.answers[3][1.0] == 2.5  # 0.5x + 2, computed by TensorFlow
    assert md["status"]["failedVersions"] == []


def test_slow_loading_model_gets_no_traffic_until_available(
    cluster: Cluster,
    namespace: str,
    operator: Operator,
    modelservers: ModelServers,
    traffic: Callable[..., TrafficDriver],
) -> None:
    serving_v1(cluster, namespace, canary_sample())
    driver = traffic()
    modelservers.slow(2, load_seconds=6)
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    # Canary pods are Running and Ready (kwok), but TF Serving says LOADING. The pods may
    # appear before the status write that starts the canary lands: wait for both.
    wait_for(lambda: pods_of(cluster, namespace, 2), 30, what="canary pods")
    c = wait_for(lambda: canary(cluster, namespace), 30, what="the canary on the status")
    pods = cluster.core.list_namespaced_pod(
        namespace, label_selector="serving.modeldeploy.dev/version=2"
    ).items
    assert all("serving.modeldeploy.dev/model-available" not in (p.metadata.labels or {}) for p in pods)
    assert c["readyReplicas"] == 0
    assert "stepStartedAt" not in c
    assert driver.counts().get(2, 0) == 0
    loaded = wait_for(
        lambda: (c := canary(cluster, namespace)) and c.get("readyReplicas", 0) >= 1 and c,
        30,
        what="canary serving after load",
    )
    assert loaded["stepStartedAt"]
    wait_for(lambda: driver.counts().get(2, 0) > 0, 20, what="traffic reaches the loaded canary")


def test_too_little_traffic_stays_inconclusive_and_rolls_back_at_the_deadline(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    serving_v1(cluster, namespace, canary_sample(progressDeadlineSeconds=12))
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    wait_for(
        lambda: (c := canary(cluster, namespace)) and c["analysis"].get("inconclusive", 0) >= 2,
        30,
        what="inconclusive checks",
    )
    c = canary(cluster, namespace)
    assert c is not None
    assert c["step"] == 0
    assert c["analysis"].get("passed", 0) == 0
    md = cluster.wait_phase(namespace, "mnist", "Degraded", timeout=40)
    entry = md["status"]["history"][-1]
    assert entry["result"] == "RolledBack"
    assert entry["reason"].startswith("ProgressDeadlineExceeded")
    assert "minRequests 5" in entry["reason"]


def test_pause_holds_the_canary_and_resume_continues(
    cluster: Cluster, namespace: str, operator: Operator, traffic: Callable[..., TrafficDriver]
) -> None:
    serving_v1(cluster, namespace, canary_sample())
    traffic()
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}, "rollout": {"paused": True}}})
    wait_for(lambda: (c := canary(cluster, namespace)) and c.get("paused"), 30, what="paused canary")
    # Several pauses and analysis intervals pass: the canary stays where it is.
    holds_for(
        lambda: (
            (c := canary(cluster, namespace)) is not None
            and c["step"] == 0
            and c["analysis"].get("passed", 0) == 0
        ),
        6,
        what="paused canary holds step 1",
    )
    assert "(paused)" in plugin(cluster, namespace, "status", "mnist", exit_codes=(2,))
    plugin(cluster, namespace, "resume", "mnist")
    md = cluster.wait_phase(namespace, "mnist", "Ready", timeout=60)
    assert md["status"]["stable"]["version"] == 2


def test_manual_promote_skips_the_remaining_steps(
    cluster: Cluster, namespace: str, operator: Operator, traffic: Callable[..., TrafficDriver]
) -> None:
    # Pauses no test outlasts (each shorter than the deadline, as admission requires).
    slow: dict[str, Any] = {
        "steps": [{"weight": 10, "pause": "5m"}, {"weight": 50, "pause": "5m"}],
        "progressDeadlineSeconds": 600,
    }
    serving_v1(cluster, namespace, canary_sample(**slow))
    traffic()
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    wait_for(lambda: (c := canary(cluster, namespace)) and c.get("stepStartedAt"), 30, what="canary serving")
    plugin(cluster, namespace, "promote", "mnist", "--full")
    md = cluster.wait_phase(namespace, "mnist", "Ready", timeout=60)
    assert md["status"]["stable"]["version"] == 2
    assert md["status"]["history"][-1]["reason"] == "promoted by the promote annotation"


def test_abort_returns_all_traffic_to_stable(
    cluster: Cluster, namespace: str, operator: Operator, traffic: Callable[..., TrafficDriver]
) -> None:
    serving_v1(
        cluster, namespace, canary_sample(steps=[{"weight": 50, "pause": "5m"}], progressDeadlineSeconds=600)
    )
    driver = traffic()
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    wait_for(lambda: driver.counts().get(2, 0) > 0, 30, what="canary traffic")
    plugin(cluster, namespace, "abort", "mnist")
    md = cluster.wait_phase(namespace, "mnist", "Degraded", timeout=30)
    assert md["status"]["history"][-1]["result"] == "Aborted"
    assert md["status"]["failedVersions"] == [2]
    wait_for(lambda: not pods_of(cluster, namespace, 2), 30, what="canary pods gone")
    # Requests routed just before the pods went away may still be answered: wait until the
    # count of version 2 has stood still for a second, then nothing more may reach it.
    last = {"count": -1, "since": time.monotonic()}

    def settled() -> bool:
        count = driver.counts().get(2, 0)
        if count != last["count"]:
            last.update(count=count, since=time.monotonic())
            return False
        return time.monotonic() - last["since"] >= 1.0

    wait_for(settled, 15, interval=0.1, what="requests in flight to version 2 answered")
    served = driver.counts().get(2, 0)
    # Traffic keeps flowing; none of it may reach version 2 any more.
    holds_for(lambda: driver.counts().get(2, 0) == served, 2, what="no traffic to the aborted canary")
    assert driver.counts().get(1, 0) > 0


def test_operator_killed_mid_canary_resumes_at_the_same_step(
    cluster: Cluster,
    namespace: str,
    start_operator: Callable[..., Operator],
    traffic: Callable[..., TrafficDriver],
) -> None:
    first = start_operator()
    body = canary_sample(steps=[{"weight": 20, "pause": "2s"}, {"weight": 50, "pause": "12s"}])
    serving_v1(cluster, namespace, body)
    traffic()
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    before = wait_for(
        lambda: (c := canary(cluster, namespace)) and c["step"] == 1 and c.get("stepStartedAt") and c,
        40,
        what="step 2 serving",
    )
    first.stop(kill=True)
    deployments = cluster.children(namespace, "mnist")["deployments"]
    start_operator()
    # The restarted operator keeps the step and its pause timer.
    wait_for(
        lambda: (
            (c := canary(cluster, namespace)) and c["analysis"]["passed"] > before["analysis"]["passed"] and c
        ),
        20,
        what="analysis continues after restart",
    )
    after = canary(cluster, namespace)
    assert after is not None
    assert after["step"] == 1
    assert after["stepStartedAt"] == before["stepStartedAt"]
    assert cluster.children(namespace, "mnist")["deployments"] == deployments
    md = cluster.wait_phase(namespace, "mnist", "Ready", timeout=60)
    assert md["status"]["stable"]["version"] == 2


def test_new_version_during_a_canary_replaces_the_canary(
    cluster: Cluster, namespace: str, operator: Operator, traffic: Callable[..., TrafficDriver]
) -> None:
    serving_v1(
        cluster, namespace, canary_sample(steps=[{"weight": 20, "pause": "5m"}], progressDeadlineSeconds=600)
    )
    traffic()
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    wait_for(lambda: (c := canary(cluster, namespace)) and c.get("stepStartedAt"), 30)
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 3}}})
    wait_for(lambda: (c := canary(cluster, namespace)) and c["version"] == 3 and c.get("stepStartedAt"), 30)
    wait_for(
        lambda: sorted(cluster.children(namespace, "mnist")["deployments"]) == ["mnist-v1", "mnist-v3"],
        30,
        what="canary v2 replaced by v3",
    )


def test_gateway_api_router_sets_route_weights_to_the_step_weight(
    cluster: Cluster, namespace: str, operator: Operator, traffic: Callable[..., TrafficDriver]
) -> None:
    body = canary_sample(steps=[{"weight": 30, "pause": "3s"}])
    body["spec"]["traffic"] = {
        "router": "GatewayAPI",
        "gateway": {
            "parentRefs": [{"name": "public", "namespace": "gateways"}],
            "hostnames": ["mnist.example.com"],
        },
    }
    serving_v1(cluster, namespace, body)

    def weights() -> dict[str, int]:
        route = cluster.custom.get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", namespace, "httproutes", "mnist"
        )
        return {b["name"]: b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]}

    assert wait_for(weights, 30, what="HTTPRoute") == {"mnist-v1": 100}
    route = cluster.custom.get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", namespace, "httproutes", "mnist"
    )
    assert route["spec"]["parentRefs"][0]["name"] == "public"
    assert route["spec"]["hostnames"] == ["mnist.example.com"]
    driver = traffic()
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    assert wait_for(
        lambda: weights() == {"mnist-v1": 70, "mnist-v2": 30} and weights(), 30, what="exact canary weight"
    ) == {"mnist-v1": 70, "mnist-v2": 30}
    assert (canary(cluster, namespace) or {}).get("trafficShare") == 0.3  # a route splits by weight
    services = cluster.children(namespace, "mnist")["services"]
    assert {"mnist", "mnist-v1", "mnist-v2"} <= set(services)
    wait_for(lambda: driver.counts().get(2, 0) > 0, 20, what="traffic through the route to v2")
    cluster.wait_phase(namespace, "mnist", "Ready", timeout=60)
    assert wait_for(lambda: weights() == {"mnist-v2": 100} and weights(), 30) == {"mnist-v2": 100}
    wait_for(
        lambda: "mnist-v1" not in cluster.children(namespace, "mnist")["services"],
        30,
        what="old version's Service removed",
    )
