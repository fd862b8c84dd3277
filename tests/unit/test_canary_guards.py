"""The edges of the canary's rollback, deadline and analysis clock: each test holds a
guard that mutation testing (make mutation) found no test holding."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modeldeploy.api.status import (
    ActionValues,
    AnalysisStatus,
    CanaryStatus,
    CheckResult,
    Counters,
    PodCounters,
    PreTrafficStatus,
    Verdict,
)
from modeldeploy.api.times import parse_time
from modeldeploy.api.webhook_gates import GatePoint, GateResult, WebhookStatus
from modeldeploy.rollout.canary import MIN_REQUEUE_SECONDS, analysis_due, opening_canary, steps_hash
from modeldeploy.rollout.types import Check, PlanInputs, PreTrafficVerdict, VersionPlan

from .objects import SAMPLE_SPEC, make_plan, model_deployment, observed_deployment
from .test_canary import STABLE_2, T0, after, at, canary_md, failed, manual_md, observed, passed
from .test_webhook_decisions import answer, gate, gated_md, status_of

pytestmark = pytest.mark.timeout(30)


def test_the_deadline_itself_is_not_yet_past() -> None:
    md = canary_md()
    status = after(make_plan(md, STABLE_2, observed(0), at(0)))  # pods never serve
    assert make_plan(md, status, observed(0), at(60)).outcome is None
    assert make_plan(md, status, observed(0), at(61)).outcome is not None


def test_failed_versions_keep_the_highest_fifty() -> None:
    md = canary_md(analysis={"interval": "5s", "failureLimit": 1, "minRequests": 10})
    status = after(make_plan(md, STABLE_2, observed(1), at(0)))
    status = status.model_copy(update={"failed_versions": list(range(4, 64))})
    plan = make_plan(md, status, observed(1), at(5), PlanInputs(check=failed(at(5))))
    assert plan.outcome is not None
    assert plan.failed_versions == list(range(14, 64))


@pytest.mark.parametrize(
    ("changes", "rollout", "due"),
    [
        ({}, {}, True),
        ({"version": 4}, {}, False),  # a canary of another version than the spec's
        ({"version": 2}, {}, False),
        ({"paused": True}, {}, False),
        ({}, {"paused": True}, False),
        ({"step_started_at": None}, {}, False),  # its pods do not all serve yet
    ],
)
def test_a_check_falls_due_only_for_the_running_canary_of_the_spec(
    changes: dict[str, object], rollout: dict[str, object], due: bool
) -> None:
    canary = CanaryStatus(version=3, step_started_at=at(10)).model_copy(update=changes)
    status = STABLE_2.model_copy(update={"canary": canary})
    assert analysis_due(canary_md(**rollout), status, parse_time(at(100))) is due


def test_no_canary_has_no_check_due() -> None:
    assert analysis_due(canary_md(), STABLE_2, parse_time(at(100))) is False


@pytest.mark.parametrize("written", [1, 4])
def test_a_canary_of_another_version_in_status_is_replaced(written: int) -> None:
    md = canary_md()  # version 3
    status = STABLE_2.model_copy(update={"canary": CanaryStatus(version=written, step=1)})
    canary = opening_canary(md, status, parse_time(at(0)), None)
    assert (canary.version, canary.step) == (3, 0)


CHECKED = PreTrafficStatus(warmed_up=True)
BASELINE = {"mnist-v3-a": PodCounters(requests=7, errors=1)}


@pytest.mark.parametrize("version", [2, 4])
def test_pre_traffic_results_of_another_version_are_not_the_canarys(version: int) -> None:
    verdict = PreTrafficVerdict(version=version, status=CHECKED, baselines=BASELINE)
    canary = opening_canary(canary_md(), STABLE_2, parse_time(at(0)), verdict)
    assert canary.pre_traffic is None
    assert canary.analysis.counters is None


def test_the_canarys_pre_traffic_results_and_baselines_are_kept() -> None:
    verdict = PreTrafficVerdict(version=3, status=CHECKED, baselines=BASELINE)
    canary = opening_canary(canary_md(), STABLE_2, parse_time(at(0)), verdict)
    assert canary.pre_traffic == CHECKED
    assert canary.analysis.counters is not None
    assert canary.analysis.counters.requests == 7
    bare = opening_canary(canary_md(), STABLE_2, parse_time(at(0)), PreTrafficVerdict(version=3))
    assert (bare.pre_traffic, bare.analysis.counters) == (None, None)


def test_a_canary_whose_deployment_is_not_there_yet_counts_no_serving_pod() -> None:
    # shrinkStable gives up stable pods only for canary pods that serve: none here, so none.
    md = canary_md(shrinkStable=True, steps=[{"weight": 50, "pause": "10s"}])
    plan = make_plan(md, STABLE_2, {2: observed_deployment(2)}, at(0))
    assert plan.canary is not None
    assert plan.canary.ready_replicas == 0
    assert VersionPlan(2, 2, "stable") in plan.apply


def test_a_canary_written_by_an_earlier_operator_keeps_its_step() -> None:
    # The hash of canary_md's steps as status.canary.stepsHash has always held it: a hash
    # computed otherwise would restart every running canary at an operator upgrade.
    written = CanaryStatus(version=3, step=1, steps_hash="d4f13a2b1876", step_started_at=at(0))
    canary = opening_canary(
        canary_md(), STABLE_2.model_copy(update={"canary": written}), parse_time(at(3)), None
    )
    assert (canary.step, canary.steps_hash) == (1, "d4f13a2b1876")


THREE_STEPS = [{"weight": 10, "pause": "5s"}, {"weight": 30, "pause": "5s"}, {"weight": 60, "pause": "5s"}]
ONE_STEP = [{"weight": 20, "pause": "5s"}]


@pytest.mark.parametrize(("before", "now"), [(THREE_STEPS, ONE_STEP), (ONE_STEP, THREE_STEPS)])
def test_changed_steps_restart_the_canary_whichever_way_they_changed(
    before: list[dict[str, str]], now: list[dict[str, str]]
) -> None:
    old = steps_hash(canary_md(steps=before).spec.rollout.effective_steps())
    written = CanaryStatus(version=3, step=1, steps_hash=old, step_started_at=at(0))
    canary = opening_canary(
        canary_md(steps=now), STABLE_2.model_copy(update={"canary": written}), parse_time(at(3)), None
    )
    assert canary.step == 0


def test_restarted_steps_drop_the_hold_for_traffic_and_the_passes_of_the_old_step() -> None:
    written = CanaryStatus(
        version=3,
        step=1,
        steps_hash=steps_hash(canary_md(steps=THREE_STEPS).spec.rollout.effective_steps()),
        step_started_at=at(0),
        waiting_for_traffic=True,
        analysis=AnalysisStatus(passed=1, step_passed=1),
    )
    # 60% of two stable pods is three canary pods: one serves, so the new first step waits.
    md = canary_md(steps=[{"weight": 60, "pause": "10s"}])
    plan = make_plan(md, STABLE_2.model_copy(update={"canary": written}), observed(1), at(3))
    assert plan.canary is not None
    assert (plan.canary.step, plan.canary.step_started_at) == (0, None)
    assert not plan.canary.waiting_for_traffic
    assert plan.canary.analysis.step_passed == 0


def test_the_pass_that_ends_the_last_step_asks_for_the_promotion_at_once() -> None:
    md = canary_md(steps=[{"weight": 20, "pause": "10s"}], analysis=None)
    status = after(make_plan(md, STABLE_2, observed(1), at(0)))
    ended = make_plan(md, status, observed(1), at(10))
    assert ended.canary is not None
    assert ended.canary.step == 1
    assert ended.requeue_after == 0.0


def test_a_pre_traffic_gate_is_not_asked_at_a_later_step_waiting_for_its_pods() -> None:
    # A gate added to the spec after the canary took traffic: there is no traffic to hold back.
    md = gated_md(gate("sign-off", "PreTraffic"))
    written = CanaryStatus(version=3, step=1, started_at=T0, last_progress_at=at(0))
    plan = make_plan(md, STABLE_2.model_copy(update={"canary": written}), observed(1), at(1))
    assert plan.canary is not None
    assert (plan.canary.step, plan.canary.step_started_at) == (1, None)  # 50% needs two pods
    assert plan.webhook_calls == ()


def test_a_promote_to_the_next_step_needs_a_passing_check_in_it() -> None:
    md = canary_md()
    status = after(make_plan(md, STABLE_2, observed(1), at(0)))
    checked = make_plan(md, status, observed(1), at(5), PlanInputs(check=passed(at(5))))
    assert checked.canary is not None
    assert checked.canary.analysis.step_passed == 1
    promote = PlanInputs(actions=ActionValues(promote="step:t1"))
    promoted = make_plan(md, after(checked), observed(2, 2), at(6), promote)
    assert promoted.canary is not None
    assert (promoted.canary.step, promoted.canary.analysis.step_passed) == (1, 0)
    # Its pause passes without a check: it holds; the first passing check ends it.
    held = make_plan(md, after(promoted), observed(2, 2), at(17))
    assert held.canary is not None
    assert held.canary.step == 1
    moved = make_plan(md, after(held), observed(2, 2), at(18), PlanInputs(check=passed(at(18))))
    assert moved.canary is not None
    assert moved.canary.step == 2


def test_a_full_promote_from_a_manual_step_waits_for_no_other_promote() -> None:
    md = manual_md()
    status = after(make_plan(md, STABLE_2, observed(1), at(0)))
    assert status.canary is not None
    assert status.canary.waiting_for_promote
    full = make_plan(md, status, observed(1), at(1), PlanInputs(actions=ActionValues(promote="full:t1")))
    assert full.canary is not None
    assert (full.canary.step, full.canary.manual_promotion) == (2, True)
    assert not full.canary.waiting_for_promote


def test_a_resumed_canary_runs_again_and_stops_waiting_for_traffic() -> None:
    md = canary_md()
    written = CanaryStatus(
        version=3, step_started_at=at(0), last_progress_at=at(0), paused=True, waiting_for_traffic=True
    )
    resumed = make_plan(md, STABLE_2.model_copy(update={"canary": written}), observed(1), at(50))
    assert resumed.canary is not None
    assert not resumed.canary.paused
    assert not resumed.canary.waiting_for_traffic
    assert resumed.canary.last_progress_at == parse_time(at(50))


def test_a_pre_traffic_hold_gate_that_refused_holds_off_the_deadline() -> None:
    md = gated_md(gate("sign-off", "PreTraffic", on_failure="Hold"))
    started = make_plan(md, STABLE_2, observed(0), at(0))
    no = answer("sign-off", GatePoint.PRE_TRAFFIC, 0, at(1), allowed=False, detail="HTTP 503: freeze")
    refused = make_plan(md, status_of(started), observed(0), at(1), no)
    assert refused.outcome is None
    late = make_plan(md, status_of(refused), observed(0), at(100))  # deadline 60 s
    assert late.outcome is None, "waiting for a Hold gate's yes is not a stall"


def test_a_pre_promotion_hold_gate_that_refused_holds_off_the_deadline() -> None:
    md = gated_md(gate("approve", "PrePromotion", on_failure="Hold"))
    pods = observed(2, 2)
    first = make_plan(md, STABLE_2, pods, at(0))
    second = make_plan(md, status_of(first), pods, at(12), PlanInputs(check=passed(at(12))))
    assert second.canary is not None
    assert second.canary.step == 1
    done = make_plan(md, status_of(second), pods, at(24), PlanInputs(check=passed(at(24))))
    assert [c.at for c in done.webhook_calls] == [GatePoint.PRE_PROMOTION]
    no = answer("approve", GatePoint.PRE_PROMOTION, 2, at(25), allowed=False, detail="HTTP 503: freeze")
    refused = make_plan(md, status_of(done), pods, at(25), no)
    assert refused.outcome is None
    late = make_plan(md, status_of(refused), pods, at(100))  # the step started at 12, deadline 60 s
    assert late.outcome is None, "waiting for a Hold gate's yes is not a stall"


def refusal(step: int) -> WebhookStatus:
    return WebhookStatus(
        name="load", at=GatePoint.STEP, step=step, result=GateResult.FAILED, checked_at=at(1)
    )


@pytest.mark.parametrize(
    ("on_failure", "canary_step", "refused_before", "held"),
    [
        ("Hold", 0, 1, True),  # the refusal of the gate the canary waits at
        ("Hold", 0, 2, False),  # a later step's refusal, before the steps restarted
        ("Hold", 1, 1, False),  # the step it refused was promoted past
        ("Rollback", 0, 1, False),  # refused while the gate was Hold; it no longer is
    ],
)
def test_only_a_hold_gates_refusal_at_the_point_waited_at_holds_off_the_deadline(
    on_failure: str, canary_step: int, refused_before: int, held: bool
) -> None:
    analysis = {"interval": "5s", "minRequests": 10, "webhooks": [gate("load", "Step", on_failure)]}
    md = canary_md(steps=THREE_STEPS, analysis=analysis)
    written = CanaryStatus(
        version=3,
        step=canary_step,
        step_started_at=at(0),
        last_progress_at=at(0),
        analysis=AnalysisStatus(webhooks=[refusal(refused_before)]),
    )
    plan = make_plan(md, STABLE_2.model_copy(update={"canary": written}), observed(1), at(61))
    if held:
        assert plan.outcome is None
    else:
        assert plan.outcome is not None
        assert plan.outcome.reason.startswith("ProgressDeadlineExceeded")


@pytest.mark.parametrize(
    ("manual", "reason"),
    [(False, "passed 2 step(s) of analysis"), (True, "promoted by the promote annotation")],
)
def test_the_promotion_says_how_it_was_earned(manual: bool, reason: str) -> None:
    written = CanaryStatus(version=3, step=2, started_at=T0, last_progress_at=at(30), manual_promotion=manual)
    grown = {2: observed_deployment(2), 3: observed_deployment(3)}
    plan = make_plan(canary_md(), STABLE_2.model_copy(update={"canary": written}), grown, at(31))
    assert plan.outcome is not None
    assert (plan.outcome.result, plan.outcome.reason) == ("Promoted", reason)


def test_the_promotion_removes_every_other_version_a_newer_one_too() -> None:
    written = CanaryStatus(version=3, step=2, started_at=T0, last_progress_at=at(30))
    seen = {2: observed_deployment(2), 3: observed_deployment(3), 5: observed_deployment(5)}
    plan = make_plan(canary_md(), STABLE_2.model_copy(update={"canary": written}), seen, at(31))
    assert plan.outcome is not None
    assert plan.delete == [2, 5]


def sized_md(replicas: int, steps: list[dict[str, Any]]) -> Any:
    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["replicas"] = replicas
    spec["rollout"] = {"strategy": "Canary", "steps": steps, "progressDeadlineSeconds": 60}
    return model_deployment(spec)


@pytest.mark.parametrize(
    ("weights", "stable", "serving", "weight"),
    [
        ([20, 50], 2, 1, 50),  # the last step's weight while the pods carry less
        ([10], 2, 1, 33),  # one of three serving pods
        ([10], 4, 3, 43),  # three of seven
        ([10], 2, 400, 99),  # never all the traffic before the Deployment is complete
    ],
)
def test_a_growing_canary_carries_the_share_its_serving_pods_take(
    weights: list[int], stable: int, serving: int, weight: int
) -> None:
    md = sized_md(stable, [{"weight": w, "pause": "10s"} for w in weights])
    status = STABLE_2.model_copy(
        update={"canary": CanaryStatus(version=3, step=len(weights), started_at=T0, last_progress_at=at(30))}
    )
    seen = {
        2: observed_deployment(2, replicas=stable, ready=stable),
        3: observed_deployment(3, replicas=stable, ready=serving, generation=2),  # not yet complete
    }
    plan = make_plan(md, status, seen, at(31))
    assert plan.outcome is None
    assert plan.canary is not None
    assert (plan.canary.weight, plan.route_weight) == (weight, weight)


def test_a_step_whose_pause_just_ended_waits_for_its_next_check_not_less() -> None:
    md = canary_md()  # pause 10 s, a check every 5 s
    status = after(make_plan(md, STABLE_2, observed(1), at(0)))
    ended = make_plan(md, status, observed(1), at(10))  # no check has passed in it yet
    assert ended.canary is not None
    assert ended.canary.step == 0
    assert ended.requeue_after == 5.0


def test_a_step_about_to_end_is_looked_at_again_no_sooner_than_the_floor() -> None:
    md = canary_md(analysis=None)
    status = after(make_plan(md, STABLE_2, observed(1), "2026-01-01T00:00:00.000Z"))
    close = make_plan(md, status, observed(1), "2026-01-01T00:00:09.990Z")  # 10 ms left
    assert close.canary is not None
    assert close.canary.step == 0
    assert close.requeue_after == MIN_REQUEUE_SECONDS


def test_a_check_keeps_the_counters_it_carries_and_one_without_keeps_the_last() -> None:
    md = canary_md()
    status = after(make_plan(md, STABLE_2, observed(1), at(0)))
    canary = Counters(pods={"mnist-v3-a": PodCounters(requests=40, errors=1)})
    stable = Counters(pods={"mnist-v2-a": PodCounters(requests=90)})
    result = CheckResult(at=at(5), verdict=Verdict.PASSED, message="ok")
    first = make_plan(md, status, observed(1), at(5), PlanInputs(check=Check(result, canary, stable)))
    assert first.canary is not None
    assert (first.canary.analysis.passed, first.canary.analysis.step_passed) == (1, 1)
    assert (first.canary.analysis.counters, first.canary.analysis.stable_counters) == (canary, stable)
    second = make_plan(md, after(first), observed(1), at(6), PlanInputs(check=passed(at(6))))
    assert second.canary is not None
    assert (second.canary.analysis.counters, second.canary.analysis.stable_counters) == (canary, stable)
