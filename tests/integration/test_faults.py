"""Faults injected into a running canary: the operator never freezes, never
passes what it cannot measure, and keeps every other resource moving."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from modeldeploy.api.names import LABEL_MODEL_AVAILABLE, LABEL_VERSION
from testbed.modelserver.traffic import TrafficDriver
from testbed.support.wait import holds_for, wait_for
from tests.support.scripted_http import ScriptedServer

from .conftest import Cluster, ModelServers, Operator, sample
from .test_canary import canary, canary_sample, plugin, pods_of, serving_v1

pytestmark = pytest.mark.timeout(180)
DEADLINE = 12  # progressDeadlineSeconds of the canaries here: a stuck canary ends this soon
FAKETIME_LIBRARY = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"  # Debian's faketime


def rolled_back_in_time(cluster: Cluster, namespace: str, started: float) -> dict[str, Any]:
    md = cluster.wait_phase(namespace, "mnist", "Degraded", timeout=DEADLINE + 40)
    status = md["status"]
    assert status["history"][-1]["result"] == "RolledBack"
    assert "ProgressDeadlineExceeded" in status["history"][-1]["reason"]
    assert time.monotonic() - started >= DEADLINE - 1, "rolled back before the deadline: a check failed"
    assert status["failedVersions"] == [2]
    assert len(json.dumps(status)) < 8000, "status must stay small"
    return md


@pytest.mark.parametrize("fault", ["nan", "negative", "garbage", "non_utf8", "drip"])
def test_broken_canary_metrics_never_pass_and_the_deadline_still_rolls_back(
    cluster: Cluster,
    namespace: str,
    operator: Operator,
    modelservers: ModelServers,
    traffic: Callable[..., TrafficDriver],
    fault: str,
) -> None:
    serving_v1(cluster, namespace, canary_sample(progressDeadlineSeconds=DEADLINE))
    traffic()
    modelservers.break_metrics(2, fault)
    started = time.monotonic()
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    # Meanwhile another resource rolls out: workers are not held by the broken pods.
    cluster.create_md(namespace, sample("other", replicas=1))
    cluster.wait_phase(namespace, "other", "Ready", timeout=DEADLINE + 20)
    md = rolled_back_in_time(cluster, namespace, started)
    assert (
        "failed" not in operator.log().lower().split("rolled back")[0] or "reconcile of" not in operator.log()
    )
    last = md["status"]["history"][-1]["reason"]
    assert "last check" in last, last
    assert "cannot" in last or "not" in last, last  # the reason the metrics could not be read


@pytest.fixture(params=["empty list", "2 MB error"])
def broken_prometheus(request: pytest.FixtureRequest) -> Iterator[ScriptedServer]:
    error = json.dumps({"status": "error", "error": "e" * (2 << 20)}).encode()
    server = ScriptedServer(default=b"[]" if request.param == "empty list" else error)
    yield server
    server.stop()


def test_broken_prometheus_answers_never_pass(
    cluster: Cluster,
    namespace: str,
    operator: Operator,
    traffic: Callable[..., TrafficDriver],
    broken_prometheus: ScriptedServer,
) -> None:
    body = canary_sample(progressDeadlineSeconds=DEADLINE)
    body["spec"]["rollout"]["analysis"]["prometheus"] = {"address": broken_prometheus.address}
    serving_v1(cluster, namespace, body)
    traffic()
    started = time.monotonic()
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    md = rolled_back_in_time(cluster, namespace, started)
    check = md["status"]["conditions"]
    assert all(len(c["message"]) < 1100 for c in check)
    wait_for(
        lambda: cluster.children(namespace, "mnist")["deployments"] == ["mnist-v1"], 30, what="canary removed"
    )


def test_a_promote_written_while_no_canary_runs_does_not_touch_the_next_canary(
    cluster: Cluster, namespace: str, operator: Operator, traffic: Callable[..., TrafficDriver]
) -> None:
    serving_v1(cluster, namespace, canary_sample())
    plugin(cluster, namespace, "promote", "mnist")  # nothing to promote: consumed
    wait_for(
        lambda: (cluster.get_md(namespace, "mnist")["status"].get("handledActions") or {}).get("promote"),
        20,
        what="the idle promote recorded as handled",
    )
    traffic()
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    first = wait_for(lambda: canary(cluster, namespace), 20, what="canary started")
    assert first["step"] == 0
    assert not first.get("manualPromotion")
    md = cluster.wait_phase(namespace, "mnist", "Ready", timeout=90)
    assert "passed 2 step(s) of analysis" in md["status"]["history"][-1]["reason"]


def test_an_emptied_status_keeps_the_stable_one_pod_short_until_the_new_version_serves(
    cluster: Cluster,
    namespace: str,
    operator: Operator,
    modelservers: ModelServers,
    traffic: Callable[..., TrafficDriver],
) -> None:
    serving_v1(cluster, namespace, canary_sample())
    # Version 1's replacement pods now take 25 s to load: deleting one leaves the stable one short.
    modelservers.slow(1, load_seconds=25)
    victim = sorted(pods_of(cluster, namespace, 1))[0]
    name = next(
        p.metadata.name for p in cluster.core.list_namespaced_pod(namespace).items if p.metadata.uid == victim
    )
    cluster.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
    # Its replacement pod exists but its gate is closed: with the readiness gate it is not Ready
    # either, so the Deployment counts 2 pods and 1 ready, like the operator.
    wait_for(
        lambda: (
            cluster.apps.read_namespaced_deployment("mnist-v1", namespace).status.replicas == 2
            and (cluster.get_md(namespace, "mnist")["status"]["stable"]["readyReplicas"] == 1)
        ),
        30,
        what="the stable one pod short (its new pod still loading)",
    )
    # The status is emptied (a hand edit, another operator) and the spec moves on at once.
    cluster.kubectl(
        "patch", "md", "mnist", "-n", namespace, "--subresource=status", "--type=json",
        "-p", '[{"op": "replace", "path": "/status", "value": {}}]',
    )  # fmt: skip
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    traffic()

    def recovered() -> dict[str, Any] | None:
        conditions = (cluster.get_md(namespace, "mnist").get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "StatusRecovered"), None)

    condition = wait_for(recovered, 10, what="the StatusRecovered condition")
    assert condition["status"] == "True"
    assert "lost" in condition["message"]

    def stable_kept() -> bool:
        """Version 1 is there, or version 2 serves already (as the canary or promoted)."""
        if "mnist-v1" in cluster.children(namespace, "mnist")["deployments"]:
            return True
        status = cluster.get_md(namespace, "mnist").get("status") or {}
        promoted = (status.get("stable") or {}).get("version") == 2
        return promoted or (status.get("canary") or {}).get("readyReplicas", 0) > 0

    holds_for(stable_kept, 8, what="version 1 kept while nothing else serves")
    cluster.wait_event(namespace, "mnist", "StatusRecovered", "Warning")
    md = cluster.wait_phase(namespace, "mnist", "Ready", timeout=120)
    assert md["status"]["stable"]["version"] == 2


def admission_policy(namespace: str) -> str:
    """A real ValidatingAdmissionPolicy refusing, in one namespace, Deployments whose image
    says forbidden: the API server answers the operator's apply with 422."""
    name = f"no-forbidden-images-{namespace}"
    return f"""
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: [apps]
      apiVersions: [v1]
      operations: [CREATE, UPDATE]
      resources: [deployments]
  validations:
  - expression: "!object.spec.template.spec.containers.exists(c, c.image.contains('forbidden'))"
    message: "images marked forbidden may not run here"
    reason: Invalid
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {name}}}
spec:
  policyName: {name}
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {{kubernetes.io/metadata.name: {namespace}}}
"""


def test_a_refused_child_shows_as_degraded_with_the_servers_message_and_backs_off(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    policy = admission_policy(namespace)
    cluster.kubectl("apply", "-f", "-", stdin=policy)
    try:
        wait_for(lambda: policy_denies(cluster, namespace), 30, what="the admission policy in force")
        body = sample(replicas=1)
        body["spec"]["runtime"] = {"image": "registry.invalid/forbidden:1"}

        cluster.create_md(namespace, body)
        md = cluster.wait_phase(namespace, "mnist", "Degraded", timeout=40)
        degraded = next(c for c in md["status"]["conditions"] if c["type"] == "Degraded")
        assert degraded["reason"] == "ApplyRejected"
        assert "images marked forbidden may not run here" in degraded["message"]
        assert "Deployment mnist-v1" in degraded["message"]
        cluster.wait_event(namespace, "mnist", "ApplyRejected", "Warning")
        # Retried with exponential backoff: 1 s, 2 s, 4 s, ...
        delays = wait_for(
            lambda: (found := backoff_delays(operator.log())) and len(found) >= 4 and found,
            40,
            what="four retries in the operator log",
        )
        assert delays[:4] == [1.0, 2.0, 4.0, 8.0]
        # The user fixes the image: the next retry goes through.
        cluster.patch_md(namespace, "mnist", {"spec": {"runtime": {"image": "tensorflow/serving:2.18.0"}}})
        cluster.wait_phase(namespace, "mnist", "Ready", timeout=60)
    finally:
        cluster.kubectl("delete", "-f", "-", "--ignore-not-found", stdin=policy)


def policy_denies(cluster: Cluster, namespace: str) -> bool:
    probe = {
        "metadata": {"name": "probe"},
        "spec": {
            "selector": {"matchLabels": {"app": "probe"}},
            "template": {
                "metadata": {"labels": {"app": "probe"}},
                "spec": {"containers": [{"name": "c", "image": "registry.invalid/forbidden:1"}]},
            },
        },
    }
    try:
        cluster.apps.create_namespaced_deployment(namespace, probe, dry_run="All")
    except ApiException as exc:
        return exc.status == 422
    return False


def backoff_delays(log: str) -> list[float]:
    return [float(m) for m in re.findall(r"did not finish .*; again in (\d+)s", log)]


def test_an_operator_five_minutes_ahead_of_the_api_server_rolls_nothing_back(
    cluster: Cluster,
    namespace: str,
    start_operator: Callable[..., Operator],
    traffic: Callable[..., TrafficDriver],
) -> None:
    first = start_operator()
    body = canary_sample(progressDeadlineSeconds=60, steps=[{"weight": 20, "pause": "15s"}])
    serving_v1(cluster, namespace, body)
    traffic()
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    wait_for(lambda: (canary(cluster, namespace) or {}).get("stepStartedAt"), 30, what="the step started")
    first.stop()
    # The replacement runs on a node whose clock is 5 minutes ahead (libfaketime). By its own
    # clock the step started 5 minutes ago, past the 60 s deadline.
    skewed = start_operator(
        LD_PRELOAD=FAKETIME_LIBRARY, FAKETIME="+5m", FAKETIME_DONT_FAKE_MONOTONIC="1", FAKETIME_NO_CACHE="1"
    )
    md = cluster.wait_phase(namespace, "mnist", "Ready", timeout=90)
    assert md["status"]["stable"]["version"] == 2
    assert md["status"]["history"][-1]["result"] == "Promoted"
    assert "following the API server's clock" in skewed.log()


def test_relisting_every_second_changes_nothing_on_a_steady_cluster(
    cluster: Cluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    """The relist that drops ghosts after watch gaps must not churn a converged resource."""
    operator = start_operator(MODELDEPLOY_RELIST_SECONDS="1")
    md = cluster.create_md(namespace, sample(replicas=2))
    md = cluster.wait_phase(namespace, "mnist", "Ready")
    # The versions are taken once the controller-manager's own Deployment status writes are in.
    cluster.wait_deployments_settled(namespace)
    versions = {
        "md": md["metadata"]["resourceVersion"],
        "deployment": cluster.apps.read_namespaced_deployment(
            "mnist-v1", namespace
        ).metadata.resource_version,
    }

    def unchanged() -> bool:
        now = {
            "md": cluster.get_md(namespace, "mnist")["metadata"]["resourceVersion"],
            "deployment": cluster.apps.read_namespaced_deployment(
                "mnist-v1", namespace
            ).metadata.resource_version,
        }
        return now == versions

    wait_for(lambda: "relisting ModelDeployments every 1s" in operator.log(), 10, what="the relist running")
    holds_for(unchanged, 6, what="nothing written while relisting")
    assert "relist of" not in operator.log()  # it found nothing to change
    # ... because the API server answered its list of names and versions, every second.
    assert "relisting namespace" not in operator.log()  # logged when a relist fails


def test_a_runtime_change_replaces_pods_no_faster_than_new_ones_pass_the_model_gate(
    cluster: Cluster, namespace: str, operator: Operator, modelservers: ModelServers
) -> None:
    replicas = 3
    serving_v1(cluster, namespace, sample("mnist", replicas=replicas))
    original = pods_of(cluster, namespace, 1)
    # The replacement pods' model takes a while to load: a rolling update paced by the
    # containers' readiness alone would remove old pods while the new ones cannot answer.
    modelservers.slow(1, load_seconds=4)
    cluster.patch_md(namespace, "mnist", {"spec": {"runtime": {"resources": {"requests": {"cpu": "300m"}}}}})
    fewest = replicas

    def replaced() -> bool:
        nonlocal fewest
        pods = cluster.core.list_namespaced_pod(namespace, label_selector=LABEL_VERSION + "=1").items
        live = [p for p in pods if p.metadata.deletion_timestamp is None]
        serving = [
            p
            for p in live
            if (p.metadata.labels or {}).get(LABEL_MODEL_AVAILABLE) == "true"
            and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        ]
        fewest = min(fewest, len(serving))
        assert fewest >= replicas, f"only {fewest} of {replicas} pods served during the runtime change"
        uids = {p.metadata.uid for p in serving}
        return len(serving) == replicas and not uids & original

    wait_for(replaced, 90, interval=0.1, what="every pod replaced, each through the model gate")
    cluster.wait_phase(namespace, "mnist", "Ready")
