"""Each status condition on its own: the situation of one pass in, a judgement out."""

from __future__ import annotations

import dataclasses
from typing import Any

from modeldeploy.api.conditions import ConditionType, Reason
from modeldeploy.api.status import (
    AnalysisStatus,
    CanaryStatus,
    CheckResult,
    HistoryEntry,
    Phase,
    RolloutResult,
    Verdict,
)
from modeldeploy.api.times import parse_time
from modeldeploy.rollout import conditions
from modeldeploy.rollout.child_state import FetchFailure, ObservedDeployment
from modeldeploy.rollout.conditions import Situation
from modeldeploy.rollout.status import canary_status
from modeldeploy.rollout.types import CanaryState, Outcome, PassFacts, Plan

from .objects import T0, model_deployment, observed_deployment


def situation(
    plan: Plan,
    observed: dict[int, ObservedDeployment],
    history: list[HistoryEntry] | None = None,
    **facts: Any,
) -> Situation:
    return conditions.situation(
        model_deployment(), plan, PassFacts(observed, parse_time(T0), **facts), history or []
    )


def test_a_rolled_out_version_is_ready_available_and_not_degraded() -> None:
    s = situation(Plan(3, 3), {3: observed_deployment(3)})
    progressing = conditions.progressing(s)
    assert conditions.available(s).reason == Reason.MINIMUM_REPLICAS_READY
    assert not conditions.degraded(s).ok
    assert (progressing.ok, progressing.reason) == (False, Reason.ROLLOUT_COMPLETE)
    assert conditions.ready(s, progressing).ok
    assert conditions.reconciling(s, progressing).reason == Reason.ROLLOUT_COMPLETE
    assert not conditions.stalled(s, progressing).ok
    assert conditions.phase(s, conditions.available(s)) is Phase.READY


def test_a_fetch_failure_degrades_and_unloads() -> None:
    s = situation(
        Plan(None, 3), {3: observed_deployment(3, ready=0)}, fetch_failure=FetchFailure("pod-a", "403")
    )
    assert conditions.degraded(s).reason == Reason.MODEL_FETCH_FAILED
    assert conditions.model_loaded(s).reason == Reason.FETCH_FAILED
    assert conditions.phase(s, conditions.available(s)) is Phase.FAILED


def test_a_bad_spec_comes_before_every_other_problem() -> None:
    s = situation(Plan(2, 3), {2: observed_deployment(2)}, spec_problem="bad", rejected="no")
    assert (conditions.degraded(s).reason, conditions.degraded(s).message) == (Reason.INVALID_SPEC, "bad")
    assert conditions.phase(s, conditions.available(s)) is Phase.DEGRADED


def test_a_rollback_takes_its_own_code_as_reason() -> None:
    outcome = Outcome(3, RolloutResult.ROLLED_BACK, "SignatureChanged: input 'x' removed")
    s = situation(Plan(2, 3, outcome=outcome), {2: observed_deployment(2)})
    healthy = conditions.canary_healthy(s)
    assert (healthy.ok, healthy.reason) == (False, "SignatureChanged")
    assert conditions.degraded(s).message == "version 3 rolledback: SignatureChanged: input 'x' removed"


def test_a_held_back_version_names_its_last_rollback() -> None:
    history = [HistoryEntry(version=3, result=RolloutResult.ABORTED, at=T0, reason="aborted by hand")]
    s = situation(Plan(2, 3, held_back="held"), {2: observed_deployment(2)}, history)
    assert (s.rolled_back and (s.rolled_back.reason, s.rolled_back.message)) == (
        RolloutResult.ABORTED,
        "held (aborted by hand)",
    )


def test_canary_health_follows_the_latest_check() -> None:
    def health(last: CheckResult | None) -> str:
        canary = CanaryState(version=3, analysis=AnalysisStatus(last_check=last))
        return conditions.canary_healthy(
            situation(Plan(2, 3, canary=canary), {2: observed_deployment(2)})
        ).reason

    assert health(None) == Reason.NO_CHECKS_YET
    assert health(CheckResult(at=T0, verdict=Verdict.PASSED)) == Reason.ANALYSIS_PASSING
    assert health(CheckResult(at=T0, verdict=Verdict.INCONCLUSIVE)) == Reason.INCONCLUSIVE
    assert health(CheckResult(at=T0, verdict=Verdict.FAILED)) == Reason.ANALYSIS_FAILED


def test_a_paused_canary_progresses_as_paused() -> None:
    canary = CanaryState(version=3, paused=True, waiting_for_traffic=True)
    s = situation(Plan(2, 3, canary=canary), {2: observed_deployment(2)})
    progressing = conditions.progressing(s)
    assert (progressing.type, progressing.reason) == (ConditionType.PROGRESSING, Reason.PAUSED)
    assert conditions.ready(s, progressing).reason == Reason.CANARY_IN_PROGRESS
    assert conditions.reconciling(s, progressing).ok


def test_the_wire_strings_are_the_contract() -> None:
    assert [t.value for t in ConditionType] == [
        "Ready",
        "Available",
        "Progressing",
        "Degraded",
        "ModelLoaded",
        "CanaryHealthy",
        "Reconciling",
        "Stalled",
        "StatusRecovered",
    ]


def test_the_canary_shows_in_status_as_it_was_read() -> None:
    written = CanaryStatus(
        version=3,
        weight=20,
        traffic_share=0.33,
        step=1,
        replicas=2,
        ready_replicas=1,
        analysis=AnalysisStatus(passed=2, step_passed=1),
        started_at="2026-01-01T00:00:00.000Z",
        step_started_at="2026-01-01T00:00:10.250Z",
        last_progress_at="2026-01-01T00:00:10.250Z",
        paused=True,
        waiting_for_traffic=True,
        manual_promotion=True,
        steps_hash="abc",
    )
    assert set(CanaryStatus.model_fields) == {f.name for f in dataclasses.fields(CanaryState)} | {
        "traffic_share"
    }
    assert canary_status(CanaryState.from_status(written), 0.33) == written
