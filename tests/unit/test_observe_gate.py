"""The model gate as the observation reads it from a pod: label, readiness-gate condition, Ready."""

from __future__ import annotations

from modeldeploy.api.names import CONDITION_MODEL_AVAILABLE, LABEL_MODEL_AVAILABLE
from modeldeploy.control.observe import gate_open, passed_gate


def _gated_pod(labelled: bool, condition: bool, ready: bool) -> dict[str, object]:
    conditions = [{"type": "ContainersReady", "status": "True"}]
    if condition:
        conditions.append({"type": CONDITION_MODEL_AVAILABLE, "status": "True"})
    if ready:
        conditions.append({"type": "Ready", "status": "True"})
    labels = {LABEL_MODEL_AVAILABLE: "true"} if labelled else {}
    return {
        "metadata": {"name": "p", "labels": labels},
        "spec": {"readinessGates": [{"conditionType": CONDITION_MODEL_AVAILABLE}]},
        "status": {"phase": "Running", "podIP": "127.1.0.9", "conditions": conditions},
    }


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
