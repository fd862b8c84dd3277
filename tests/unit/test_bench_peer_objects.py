"""What the benchmark gives its peer, Argo Rollouts, and how it reads the peer's steps."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from modeldeploy.api.names import LABEL_MODEL_AVAILABLE, LABEL_VERSION
from modeldeploy.children.deployment import build_deployment
from testbed.bench import rollout_objects
from testbed.bench.peer import StepTimes
from testbed.bench.run import spec

pytestmark = pytest.mark.timeout(30)


def canary_md() -> Any:
    return rollout_objects.model_deployment("m0", "bench-argo", spec(1, 1, canary=True))


def test_the_rollout_walks_the_operators_steps_with_its_pod_template_but_the_model_gate() -> None:
    md = canary_md()
    rollout = rollout_objects.rollout(md, 2)
    canary = rollout["spec"]["strategy"]["canary"]
    assert (canary["maxUnavailable"], canary["maxSurge"]) == (0, "25%")  # the operator's surge
    assert canary["steps"] == [
        {"setWeight": 20},
        {"pause": {"duration": "3s"}},
        {"setWeight": 50},
        {"pause": {"duration": "3s"}},
    ]
    operators = copy.deepcopy(build_deployment(md, 2, 1, "stable")["spec"]["template"])
    assert operators["spec"].pop("readinessGates")  # the operator's pods wait for the model gate
    # ... and get the label its Service selects once they serve; the peer's have it at once.
    operators["metadata"]["labels"][LABEL_MODEL_AVAILABLE] = "true"
    assert rollout["spec"]["template"] == operators
    service = rollout_objects.children(md, 2)[1]
    assert service["spec"]["selector"].items() <= rollout["spec"]["template"]["metadata"]["labels"].items()
    # The selector spans versions, so a new template is the same Rollout's canary.
    selector = rollout["spec"]["selector"]["matchLabels"]
    assert LABEL_VERSION not in selector
    assert selector.items() <= rollout["spec"]["template"]["metadata"]["labels"].items()


def test_the_user_applies_the_operators_config_map_and_service_unowned() -> None:
    manifests = rollout_objects.children(canary_md(), 1)
    kinds = [(m["kind"], "ownerReferences" in m["metadata"]) for m in manifests]
    assert kinds == [("ConfigMap", False), ("Service", False), ("Rollout", False)]


def test_healthy_counts_only_for_the_generation_argo_rollouts_has_seen() -> None:
    rollout: dict[str, Any] = {"metadata": {"generation": 2}, "status": {"phase": "Healthy"}}
    rollout["status"]["observedGeneration"] = "1"
    assert not rollout_objects.rollout_healthy(rollout)
    rollout["status"]["observedGeneration"] = "2"
    assert rollout_objects.rollout_healthy(rollout)
    rollout["status"]["phase"] = "Progressing"
    assert not rollout_objects.rollout_healthy(rollout)


def rollout_at(index: int, pause_start: str | None) -> dict[str, Any]:
    obj = rollout_objects.rollout(canary_md(), 2)
    obj["status"] = {"currentStepIndex": index}
    if pause_start is not None:
        obj["status"]["pauseConditions"] = [{"reason": "CanaryPauseStep", "startTime": pause_start}]
    return obj


def test_each_pause_is_timed_from_its_stored_start_plus_its_duration() -> None:
    times = StepTimes()
    start = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    times.observe(rollout_at(0, None), start - 1)  # setWeight 20: no pause to time
    times.observe(rollout_at(1, "2026-01-01T12:00:00Z"), start + 0.4)
    times.observe(rollout_at(1, "2026-01-01T12:00:00Z"), start + 1.0)  # the same pause, seen again
    times.observe(rollout_at(2, None), start + 3.25)  # left 250 ms after it fell due
    times.observe(rollout_at(3, "2026-01-01T12:00:05Z"), start + 5.5)
    times.observe(rollout_at(4, None), start + 8.1)
    assert [round(d, 3) for d in times.delays] == [0.25, 0.1]
    # Keyed by the operator's step: the first pause ends its step 1, the second its step 2.
    assert {k: [round(d, 3) for d in v] for k, v in times.by_step.items()} == {1: [0.25], 2: [0.1]}
