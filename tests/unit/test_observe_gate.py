"""The model gate as the observation reads it from a pod: label, readiness-gate condition, Ready."""

from __future__ import annotations

from typing import Any

from modeldeploy.api.names import CONDITION_MODEL_AVAILABLE, LABEL_MODEL_AVAILABLE, SERVING_CONTAINER
from modeldeploy.control.observe import gate_open, passed_gate, serving_restarted_since_gate

from .objects import pod, pod_status


def _gated_pod(labelled: bool, condition: bool, ready: bool) -> dict[str, Any]:
    statuses = {"ContainersReady": "True"}
    if condition:
        statuses[CONDITION_MODEL_AVAILABLE] = "True"
    if ready:
        statuses["Ready"] = "True"
    return pod(
        "p",
        labels={LABEL_MODEL_AVAILABLE: "true"} if labelled else {},
        spec={"readinessGates": [{"conditionType": CONDITION_MODEL_AVAILABLE}]},
        status=pod_status(ip="127.1.0.9", condition_statuses=statuses),
    )


def test_a_pod_with_the_readiness_gate_needs_label_and_condition_to_pass() -> None:
    # Containers ready but the gate closed: the pod cannot be Ready yet, and is checked.
    closed = _gated_pod(labelled=False, condition=False, ready=False)
    assert not gate_open(closed)
    assert not passed_gate(closed)
    # A label alone (set by hand, or by an operator before readiness gates) is not open.
    assert not gate_open(_gated_pod(labelled=True, condition=False, ready=False))
    opened = _gated_pod(labelled=True, condition=True, ready=True)
    assert gate_open(opened)
    assert passed_gate(opened)
    # Open, but the kubelet has not made it Ready yet: it does not serve.
    assert not passed_gate(_gated_pod(labelled=True, condition=True, ready=False))


def _serving(
    state: dict[str, object], ended: str | None = None, gate_time: str = "2026-01-01T00:00:10Z"
) -> dict[str, object]:
    pod = _gated_pod(labelled=True, condition=True, ready=True)
    status = pod["status"]
    assert isinstance(status, dict)
    for c in status["conditions"]:
        if c["type"] == CONDITION_MODEL_AVAILABLE:
            c["lastTransitionTime"] = gate_time
    last = {"terminated": {"exitCode": 137, "finishedAt": ended}} if ended else {}
    status["containerStatuses"] = [{"name": SERVING_CONTAINER, "state": state, "lastState": last}]
    return pod


def test_a_serving_container_that_ended_after_the_gate_opened_closes_it() -> None:
    running: dict[str, object] = {"running": {"startedAt": "2026-01-01T00:01:00Z"}}
    assert not serving_restarted_since_gate(_serving(running))
    assert passed_gate(_serving(running))
    # Restarted before the gate opened: the gate was opened for the new process.
    assert not serving_restarted_since_gate(_serving(running, ended="2026-01-01T00:00:04Z"))
    after = _serving(running, ended="2026-01-01T00:00:59Z")
    assert serving_restarted_since_gate(after)
    assert not passed_gate(after)  # never counted as serving, whatever its label says
    assert serving_restarted_since_gate(_serving({"terminated": {"exitCode": 137}}))
    assert serving_restarted_since_gate(_serving({"waiting": {"reason": "CrashLoopBackOff"}}))


def test_a_pod_without_the_gate_condition_keeps_its_label_gate() -> None:
    legacy = pod(
        "p",
        labels={LABEL_MODEL_AVAILABLE: "true"},
        spec={},
        status=pod_status(
            condition_statuses={"Ready": "True"},
            containerStatuses=[
                {"name": SERVING_CONTAINER, "state": {"running": {"startedAt": "2030-01-01T00:00:00Z"}}}
            ],
        ),
    )
    assert not serving_restarted_since_gate(legacy)
    assert passed_gate(legacy)
