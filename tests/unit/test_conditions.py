"""Each status condition on its own: the situation of one pass in, a judgement out."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from modeldeploy.api.conditions import ConditionType, Reason
from modeldeploy.api.status import (
    AnalysisStatus,
    CanaryStatus,
    CheckResult,
    HistoryEntry,
    ModelDeploymentStatus,
    Phase,
    RolloutResult,
    Verdict,
)
from modeldeploy.api.times import parse_time
from modeldeploy.rollout import conditions
from modeldeploy.rollout.child_state import FetchFailure, ObservedDeployment
from modeldeploy.rollout.conditions import Situation
from modeldeploy.rollout.report import canary_status, derive_status
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
    # webhook_wait is derived in each pass from the gates' answers kept in analysis.webhooks.
    assert set(CanaryStatus.model_fields) | {"webhook_wait"} == {
        f.name for f in dataclasses.fields(CanaryState)
    } | {"traffic_share"}
    assert canary_status(CanaryState.from_status(written), 0.33) == written


def _canary(**changes: Any) -> CanaryState:
    return CanaryState(version=3, step=0, weight=20, replicas=1, ready_replicas=1, **changes)


FAILED_CHECK = CheckResult(
    at=T0, verdict=Verdict.FAILED, message="success rate 0.5000 < 0.99 over 20 requests"
)
ROLLED_BACK = Outcome(
    3, RolloutResult.ROLLED_BACK, "analysis failed 2 time(s) at step 0: success rate 0.5 < 0.99"
)
STABLE_AND_CANARY = {2: observed_deployment(2), 3: observed_deployment(3, replicas=1, ready=1)}
# Every kind of pass the operator derives a status from: first rollouts, canaries in each
# state, each way a rollout stops, and each problem a person must fix.
SCENARIOS: dict[str, tuple[Plan, dict[int, ObservedDeployment], dict[str, Any]]] = {
    "pending": (Plan(None, 3), {3: observed_deployment(3, ready=0)}, {}),
    "first rollout under way": (Plan(None, 3), {3: observed_deployment(3, ready=1)}, {}),
    "ready": (Plan(3, 3), {3: observed_deployment(3)}, {}),
    "immediate beside the serving one": (
        Plan(2, 3),
        {2: observed_deployment(2), 3: observed_deployment(3, ready=0)},
        {},
    ),
    "canary at a step": (Plan(2, 3, canary=_canary()), STABLE_AND_CANARY, {}),
    "canary paused": (Plan(2, 3, canary=_canary(paused=True)), STABLE_AND_CANARY, {}),
    "canary waiting for traffic": (
        Plan(2, 3, canary=_canary(waiting_for_traffic=True)),
        STABLE_AND_CANARY,
        {},
    ),
    "canary waiting for promote": (
        Plan(2, 3, canary=_canary(waiting_for_promote=True)),
        STABLE_AND_CANARY,
        {},
    ),
    "canary failing a check": (
        Plan(2, 3, canary=_canary(analysis=AnalysisStatus(failed=1, last_check=FAILED_CHECK))),
        STABLE_AND_CANARY,
        {},
    ),
    "rolled back": (Plan(2, 3, outcome=ROLLED_BACK, failed_versions=[3]), {2: observed_deployment(2)}, {}),
    "aborted": (
        Plan(2, 3, outcome=Outcome(3, RolloutResult.ABORTED, "aborted by the abort annotation at step 0")),
        {2: observed_deployment(2)},
        {},
    ),
    "held back after a rollback": (
        Plan(2, 3, held_back="version 3 was rolled back; set a new version or the retry annotation"),
        {2: observed_deployment(2)},
        {},
    ),
    "invalid spec": (
        Plan(2, 3),
        {2: observed_deployment(2)},
        {"spec_problem": "spec.runtime.args: --port is ours"},
    ),
    "a child refused": (
        Plan(2, 3),
        {2: observed_deployment(2)},
        {"rejected": "the API server refused Deployment x"},
    ),
    "fetch failed": (
        Plan(None, 3),
        {3: observed_deployment(3, ready=0)},
        {"fetch_failure": FetchFailure("mnist-v3-a", "fetch failed: access denied")},
    ),
    "pre-traffic blocked": (
        Plan(2, 3),
        STABLE_AND_CANARY,
        {"pre_traffic_blocked": "ConfigMap golden not found"},
    ),
    "first version past its deadline": (
        Plan(None, 3),
        {
            3: observed_deployment(
                3, ready=0, available="False", progressing=("False", "ProgressDeadlineExceeded")
            )
        },
        {},
    ),
    "scaled to zero": (Plan(3, 3), {3: observed_deployment(3, replicas=0, ready=0)}, {}),
    "promoted": (
        Plan(3, 3, outcome=Outcome(3, RolloutResult.PROMOTED, "passed 2 step(s)")),
        {3: observed_deployment(3)},
        {},
    ),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_condition_says_its_own_fact(scenario: str) -> None:
    """No two conditions of one status carry the same message: each says what it alone knows."""
    plan, observed, facts = SCENARIOS[scenario]
    md = model_deployment()
    status = derive_status(md, plan, ModelDeploymentStatus(), PassFacts(observed, parse_time(T0), **facts))
    messages = [(c.type, c.message) for c in status.conditions]
    repeated = {m for _, m in messages if [x for _, x in messages].count(m) > 1}
    assert not repeated, f"{scenario}: {[(t, m) for t, m in messages if m in repeated]}"


def test_after_a_rollback_model_loaded_speaks_of_the_version_that_serves() -> None:
    plan, observed, _ = SCENARIOS["rolled back"]
    loaded = conditions.model_loaded(situation(plan, observed))
    assert loaded.ok
    assert loaded.message == "version 2 (serving): 2 pod(s) report it AVAILABLE"
