"""Pre-traffic checks on the real control plane, against the TF Serving-compatible
server running real SavedModels: the model store's versions (testbed/modelserver/store.py)
are 1 = y 0.5x + 2, 2 = 0.5x + 3, 4 = input renamed, 5 = an output added, 7 = version 1
exported again."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from modeldeploy.api.names import LABEL_MODEL_AVAILABLE, LABEL_VERSION
from testbed.modelserver.rest import PREDICT_LOG
from testbed.modelserver.traffic import TrafficDriver
from testbed.support.wait import holds_for, wait_for

from .conftest import Cluster, ModelServers, Operator
from .test_canary import canary, canary_sample, plugin, serving_v1

pytestmark = pytest.mark.timeout(240)
GOLDEN_KEY = "requests.jsonl"
# Answers of version 1 (y = 0.5x + 2); version 2 answers 1.0 more.
GOLDEN_FOR_V1 = "\n".join(json.dumps({"instances": [x], "expected": [0.5 * x + 2]}) for x in (1.0, 2.0, 4.0))


def golden_config_map(cluster: Cluster, namespace: str, text: str, name: str = "golden") -> None:
    cluster.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": name}, "data": {GOLDEN_KEY: text}}
    )


def with_checks(name: str = "mnist", **pre_traffic: Any) -> dict[str, Any]:
    body = canary_sample(name, preTraffic=pre_traffic)
    body["spec"]["replicas"] = 1
    return body


def golden(**options: Any) -> dict[str, Any]:
    return {"configMapRef": {"name": "golden", "key": GOLDEN_KEY}, **options}


def last_history(
    cluster: Cluster, namespace: str, version: int, name: str = "mnist"
) -> dict[str, Any] | None:
    history = (cluster.get_md(namespace, name).get("status") or {}).get("history") or []
    return history[-1] if history and history[-1]["version"] == version else None


def ended(cluster: Cluster, namespace: str, version: int, name: str = "mnist") -> dict[str, Any]:
    entry: dict[str, Any] = wait_for(
        lambda: last_history(cluster, namespace, version, name), 90, what=f"version {version} ended"
    )
    return entry


def condition(cluster: Cluster, namespace: str, type_: str, name: str = "mnist") -> dict[str, Any]:
    conditions = (cluster.get_md(namespace, name).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == type_), {})


def pod_ips(cluster: Cluster, namespace: str, version: int) -> list[str]:
    pods = cluster.core.list_namespaced_pod(namespace, label_selector=f"{LABEL_VERSION}={version}").items
    return [p.status.pod_ip for p in pods if p.status.pod_ip and p.metadata.deletion_timestamp is None]


def predict_log(ip: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"http://{ip}:8501{PREDICT_LOG}", timeout=5) as response:
        log: list[dict[str, Any]] = json.loads(response.read())
        return log


def test_a_renamed_input_is_rolled_back_with_the_diff_and_never_sees_a_request(
    cluster: Cluster, namespace: str, operator: Operator, traffic: Callable[..., TrafficDriver]
) -> None:
    serving_v1(cluster, namespace, with_checks(warmupRequests=3))
    driver = traffic()
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 4}}})
    entry = ended(cluster, namespace, 4)
    assert entry["result"] == "RolledBack"
    assert entry["reason"] == "SignatureChanged: version 4: input 'x' removed; input 'inputs' added"
    degraded = condition(cluster, namespace, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "SignatureChanged")
    assert "input 'x' removed" in degraded["message"]
    status = cluster.get_md(namespace, "mnist")["status"]
    assert status["failedVersions"] == [4]
    assert status["stable"]["version"] == 1
    cluster.wait_event(namespace, "mnist", "SignatureChanged")
    assert driver.counts().get(4, 0) == 0, "the incompatible version took traffic"


def test_identical_refuses_an_added_output_that_compatible_accepts(
    cluster: Cluster, namespace: str, operator: Operator, traffic: Callable[..., TrafficDriver]
) -> None:
    serving_v1(cluster, namespace, with_checks("strict", signature="Identical"))
    serving_v1(cluster, namespace, with_checks("lenient", signature="Compatible"))
    traffic("lenient", "lenient")  # the promotion's analysis needs requests
    for name in ("strict", "lenient"):
        cluster.patch_md(namespace, name, {"spec": {"model": {"version": 5}}})
    assert (
        ended(cluster, namespace, 5, "strict")["reason"]
        == "SignatureChanged: version 5: output 'doubled' added"
    )
    lenient = cluster.wait_phase(namespace, "lenient", "Ready", timeout=90)
    assert lenient["status"]["stable"]["version"] == 5
    assert lenient["status"]["history"][-1]["result"] == "Promoted"


def test_expected_golden_requests_fail_a_version_that_answers_differently_unless_within_the_tolerance(
    cluster: Cluster, namespace: str, operator: Operator, traffic: Callable[..., TrafficDriver]
) -> None:
    golden_config_map(cluster, namespace, GOLDEN_FOR_V1)
    serving_v1(cluster, namespace, with_checks("tight", goldenRequests=golden()))
    serving_v1(cluster, namespace, with_checks("loose", goldenRequests=golden(tolerance={"absolute": 1.5})))
    traffic("loose", "loose")
    for name in ("tight", "loose"):
        cluster.patch_md(namespace, name, {"spec": {"model": {"version": 2}}})
    failed = ended(cluster, namespace, 2, "tight")
    assert failed["result"] == "RolledBack"
    assert failed["reason"].startswith("GoldenRequestsFailed: version 2: 3 of 3 golden answers wrong")
    assert "request 1 (line 1): [0]: expected 2.5, got 3.5" in failed["reason"]
    assert condition(cluster, namespace, "Degraded", "tight")["reason"] == "GoldenRequestsFailed"
    loose = cluster.wait_phase(namespace, "loose", "Ready", timeout=90)
    assert loose["status"]["history"][-1]["result"] == "Promoted"


def test_golden_requests_against_the_stable_measure_agreement(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    questions = "\n".join(json.dumps({"instances": [x]}) for x in (1.0, 3.0))
    golden_config_map(cluster, namespace, questions)
    serving_v1(cluster, namespace, with_checks("differs", goldenRequests=golden(compareTo="Stable")))
    slow_steps = {"steps": [{"weight": 20, "pause": "30s"}]}
    agrees = with_checks("agrees", goldenRequests=golden(compareTo="Stable"))
    agrees["spec"]["rollout"].update(slow_steps)  # long enough to read the canary's status
    serving_v1(cluster, namespace, agrees)
    cluster.patch_md(namespace, "differs", {"spec": {"model": {"version": 2}}})
    cluster.patch_md(namespace, "agrees", {"spec": {"model": {"version": 7}}})  # version 1 exported again
    differ = ended(cluster, namespace, 2, "differs")
    assert differ["reason"].startswith(
        "GoldenRequestsFailed: version 2: agreement 0.00 with version 1 is under 1"
    )
    pre = wait_for(
        lambda: ((canary(cluster, namespace, "agrees") or {}).get("preTraffic") or {}).get("golden"),
        60,
        what="the canary's golden results",
    )
    # compared with version 1's own answers: a comparison that really ran, not one skipped
    assert pre == {"requests": 2, "passed": 2, "agreement": 1.0, "firstMismatch": "", "comparedWith": 1}
    shown = canary(cluster, namespace, "agrees") or {}
    assert shown["preTraffic"]["signature"] == {"result": "Compatible", "diffs": []}
    # The rollout may end between the wait and this call: either state shows the results.
    shown_by_plugin = plugin(cluster, namespace, "status", "agrees", exit_codes=(0, 2))
    assert "pre-traffic: signature Compatible, golden 2/2 passed, agreement 1" in shown_by_plugin


def test_warmup_requests_reach_each_new_pod_before_its_first_routed_request(
    cluster: Cluster, namespace: str, operator: Operator, traffic: Callable[..., TrafficDriver]
) -> None:
    serving_v1(cluster, namespace, with_checks(warmupRequests=5))
    driver = traffic(inputs=(1.0,))
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    cluster.wait_phase(namespace, "mnist", "Ready", timeout=90)
    assert cluster.get_md(namespace, "mnist")["status"]["stable"]["version"] == 2
    wait_for(lambda: driver.counts().get(2, 0) > 0, 30, what="routed requests to version 2")
    (ip,) = pod_ips(cluster, namespace, 2)
    log = [entry["inputs"]["x"] for entry in predict_log(ip)]
    # Warm-up sends zeros shaped by the signature; the client sends 1.0.
    assert log[:5] == [0, 0, 0, 0, 0], log[:10]
    assert 1.0 in log
    assert log.index(1.0) >= 5


def test_a_malformed_golden_line_is_named_and_holds_the_new_pods_shut(
    cluster: Cluster, namespace: str, operator: Operator, traffic: Callable[..., TrafficDriver]
) -> None:
    golden_config_map(cluster, namespace, GOLDEN_FOR_V1 + '\n{"instances": [1.0\n')
    serving_v1(cluster, namespace, with_checks())  # version 1 rolled out without golden requests
    driver = traffic()
    cluster.patch_md(
        namespace,
        "mnist",
        {"spec": {"model": {"version": 2}, "rollout": {"preTraffic": {"goldenRequests": golden()}}}},
    )

    def blocked() -> dict[str, Any] | None:
        found = condition(cluster, namespace, "Degraded")
        return found if found.get("reason") == "PreTrafficBlocked" else None

    found = wait_for(blocked, 60, what="Degraded PreTrafficBlocked")
    assert f"ConfigMap golden key {GOLDEN_KEY} line 4 is not JSON" in found["message"], found

    def v2_shut() -> bool:
        pods = cluster.core.list_namespaced_pod(namespace, label_selector=f"{LABEL_VERSION}=2").items
        assert pods, "the canary pod exists"
        assert all((p.metadata.labels or {}).get(LABEL_MODEL_AVAILABLE) != "true" for p in pods)
        return True

    holds_for(v2_shut, 5, what="the canary pod kept out of service")
    assert driver.counts().get(2, 0) == 0
    status = cluster.get_md(namespace, "mnist")["status"]
    assert status["stable"]["version"] == 1
    assert not status.get("failedVersions"), "a bad golden file is not the version's failure"


def test_immediate_never_switches_to_a_version_with_a_changed_signature(
    cluster: Cluster, namespace: str, operator: Operator, traffic: Callable[..., TrafficDriver]
) -> None:
    body = with_checks()
    body["spec"]["rollout"] = {"strategy": "Immediate", "preTraffic": {}}
    serving_v1(cluster, namespace, body)
    driver = traffic()
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 4}}})
    entry = ended(cluster, namespace, 4)
    assert entry["result"] == "RolledBack"
    assert entry["reason"].startswith("SignatureChanged: version 4: input 'x' removed")
    status = cluster.get_md(namespace, "mnist")["status"]
    assert status["stable"]["version"] == 1
    wait_for(lambda: not pod_ips(cluster, namespace, 4), 60, what="version 4's pods removed")
    assert driver.counts().get(4, 0) == 0


def test_the_only_stable_pod_killed_while_a_canary_loads_keeps_the_canary_shut_until_compared(
    cluster: Cluster, namespace: str, operator: Operator, modelservers: ModelServers
) -> None:
    """Golden requests compared with the stable, whose only pod is killed while the canary's
    model loads: with no stable pod to compare with, the canary's checks wait (never pass
    unchecked) and its gate stays shut; once the stable's new pod serves, the comparison
    runs against it and version 2's different answers roll it back.

    kwok gives the stable's next pod the killed one's address: checks that
    ask that address again after the kill ask the new pod, by the version in the URL."""
    golden_config_map(cluster, namespace, "\n".join(json.dumps({"instances": [x]}) for x in (1.0, 3.0)))
    serving_v1(cluster, namespace, with_checks(goldenRequests=golden(compareTo="Stable")))
    modelservers.slow(2, load_seconds=3)
    modelservers.slow(1, load_seconds=12)  # the stable's next pod: serving long after the canary
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    wait_for(lambda: pod_ips(cluster, namespace, 2), 30, what="the canary pod running, its model loading")
    (stable_pod,) = cluster.core.list_namespaced_pod(namespace, label_selector=f"{LABEL_VERSION}=1").items
    cluster.core.delete_namespaced_pod(stable_pod.metadata.name, namespace, grace_period_seconds=0)

    def checks_wait() -> str | None:
        waiting: str | None = ((canary(cluster, namespace) or {}).get("preTraffic") or {}).get("waitingFor")
        return waiting

    assert "waiting for a serving pod of version 1" in wait_for(checks_wait, 30, what="checks waiting")

    def shut_while_no_stable_serves() -> bool:
        pods = cluster.core.list_namespaced_pod(namespace, label_selector=f"{LABEL_VERSION}=2").items
        assert all((p.metadata.labels or {}).get(LABEL_MODEL_AVAILABLE) != "true" for p in pods), (
            "gate opened"
        )
        return True

    holds_for(shut_while_no_stable_serves, 5, what="the canary's gate shut with no stable to compare with")
    entry = ended(cluster, namespace, 2)
    assert entry["reason"].startswith("GoldenRequestsFailed: version 2: agreement 0.00 with version 1"), entry


@pytest.mark.timeout(360)
def test_a_slow_model_s_warm_up_never_delays_another_resource_s_abort(
    cluster: Cluster, namespace: str, start_operator: Callable[..., Operator], modelservers: ModelServers
) -> None:
    """One reconcile worker; resource ``slow``'s canary warms up with 2000 requests of 50 ms
    each (100 s, within its 120 s budget). Run on the worker, they would hold it and every
    other resource's pass; off it, ``quick``'s abort is recorded within 10 s."""
    start_operator(MODELDEPLOY_WORKERS="1")
    modelservers.slow_predictions(2, seconds=0.05, model="slow")  # the model is named after it
    slow = with_checks("slow", warmupRequests=2000)
    # Version 1 takes 2000 warm-up requests of 50 ms: on two busy cores that has taken over
    # a minute, which is not what this test is about.
    slow["spec"]["rollout"]["progressDeadlineSeconds"] = 300
    cluster.create_md(namespace, slow)
    cluster.wait_phase(namespace, "slow", "Ready", timeout=180)
    quick = canary_sample("quick", steps=[{"weight": 50, "pause": "5m"}], progressDeadlineSeconds=600)
    quick["spec"]["replicas"] = 1
    serving_v1(cluster, namespace, quick)
    cluster.patch_md(namespace, "quick", {"spec": {"model": {"version": 7}}})
    wait_for(lambda: canary(cluster, namespace, "quick"), 30, what="quick's canary")
    cluster.patch_md(namespace, "slow", {"spec": {"model": {"version": 2}}})

    def warming_up() -> bool:
        ips = pod_ips(cluster, namespace, 2)
        try:
            return bool(ips) and len(predict_log(ips[0])) >= 20
        except OSError:  # its server not listening yet
            return False

    wait_for(warming_up, 60, what="slow's canary pod receiving its warm-up requests")
    asked = time.monotonic()  # the plugin's own start and exit count too
    plugin(cluster, namespace, "abort", "quick")
    md = cluster.wait_phase(namespace, "quick", "Degraded", timeout=30)
    took = time.monotonic() - asked
    assert md["status"]["history"][-1]["result"] == "Aborted"
    assert took < 10, f"the abort took {took:.1f}s"
    (ip,) = pod_ips(cluster, namespace, 2)
    assert len(predict_log(ip)) < 2000, "the warm-up was still under way when the abort landed"
    print(f"abort recorded {took:.1f}s after it was asked, during the other resource's warm-up")
