"""Lost or unreadable status and leftover one-shot annotations."""

from __future__ import annotations

import copy
import dataclasses

from modeldeploy.api.status import (
    ActionValues,
    HistoryEntry,
    ModelDeploymentStatus,
    RolloutResult,
    VersionStatus,
)
from modeldeploy.control.reconcile import parse_status
from modeldeploy.rollout.recovery import needs_recovery, recover
from modeldeploy.rollout.types import PlanInputs

from .objects import SAMPLE_SPEC, T0, make_plan, model_deployment, observed_deployment

STABLE_2 = ModelDeploymentStatus(
    observed_generation=1, stable=VersionStatus(version=2, replicas=2, ready_replicas=2)
)


def canary_md(version: int = 3) -> object:
    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["model"]["version"] = version
    spec["rollout"] = {
        "strategy": "Canary",
        "steps": [{"weight": 20, "pause": "10s"}],
        "progressDeadlineSeconds": 60,
    }
    return model_deployment(spec)


def test_a_promote_written_while_no_canary_runs_is_consumed_not_saved_for_the_next() -> None:
    # Version 2 serves, no canary; someone writes the promote annotation.
    idle = make_plan(
        canary_md(2),
        STABLE_2,
        {2: observed_deployment(2)},
        T0,
        PlanInputs(actions=ActionValues(promote="t1")),
    )
    assert idle.handled.promote == "t1"
    status = STABLE_2.model_copy(update={"handled_actions": idle.handled})
    # Later version 3 is asked for, the annotation still there: the canary starts at step 0.
    started = make_plan(
        canary_md(3), status, {2: observed_deployment(2)}, T0, PlanInputs(actions=ActionValues(promote="t1"))
    )
    assert started.canary is not None
    assert started.canary.step == 0
    assert not started.canary.manual_promotion
    # Without the consumed value the old annotation would jump the new canary to promotion.
    fresh = make_plan(
        canary_md(3),
        STABLE_2,
        {2: observed_deployment(2)},
        T0,
        PlanInputs(actions=ActionValues(promote="t1")),
    )
    assert fresh.canary is not None
    assert fresh.canary.step == 1  # a promote written for this canary still works


def test_an_abort_written_while_no_canary_runs_does_not_kill_the_next() -> None:
    idle = make_plan(
        canary_md(2), STABLE_2, {2: observed_deployment(2)}, T0, PlanInputs(actions=ActionValues(abort="t1"))
    )
    status = STABLE_2.model_copy(update={"handled_actions": idle.handled})
    started = make_plan(
        canary_md(3), status, {2: observed_deployment(2)}, T0, PlanInputs(actions=ActionValues(abort="t1"))
    )
    assert started.outcome is None
    assert started.canary is not None


def test_one_unreadable_field_keeps_the_rest_of_the_status() -> None:
    raw = {
        "observedGeneration": 4,
        "failedVersions": [3],
        "handledActions": {"promote": "t1"},
        "canary": {"version": 5, "fromTheFuture": True},
    }
    status, unreadable = parse_status(raw)
    assert unreadable == ("canary",)
    assert status.failed_versions == [3]
    assert status.handled_actions == ActionValues(promote="t1")
    assert status.canary is None


def test_an_emptied_status_keeps_the_stable_that_is_one_pod_short() -> None:
    """Status replaced with {}: the stable Deployment (labelled stable) serves 1 of 2 pods."""
    short = observed_deployment(2, replicas=2, ready=1)
    observed = {2: short}
    assert not short.complete
    empty, _ = parse_status({})
    assert needs_recovery(empty, observed)
    recovered = recover(empty, (), observed, ActionValues(promote="t1"))
    plan = make_plan(
        canary_md(3), recovered.status, observed, T0, PlanInputs(actions=ActionValues(promote="t1"))
    )
    assert plan.serving_version == 2
    assert 2 not in plan.delete
    assert {vp.version for vp in plan.apply} == {2, 3}
    assert plan.canary is not None
    assert plan.canary.step == 0  # the leftover promote was taken as handled


def test_rolled_back_versions_come_back_from_the_history() -> None:
    history = [
        HistoryEntry(version=3, result=RolloutResult.ROLLED_BACK, at=T0, reason="analysis failed"),
        HistoryEntry(version=4, result=RolloutResult.ABORTED, at=T0, reason="aborted"),
        HistoryEntry(version=4, result=RolloutResult.PROMOTED, at=T0, reason="retried"),
    ]
    status = ModelDeploymentStatus(history=history)
    canary = dataclasses.replace(observed_deployment(3, ready=0), track="canary")
    recovered = recover(status, ("canary",), {4: observed_deployment(4), 3: canary}, ActionValues())
    assert recovered.status.failed_versions == [3]
    assert "canary" in recovered.lost
    assert any("canary progress" in item for item in recovered.lost)
    # Version 3 is not rolled again by a re-sync of the same spec.
    plan = make_plan(canary_md(3), recovered.status, {4: observed_deployment(4), 3: canary}, T0)
    assert plan.held_back is not None
    assert plan.serving_version == 4
