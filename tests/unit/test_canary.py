"""The canary step machine, replica math and analysis verdicts: pure, no cluster."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modeldeploy.api.spec import Analysis, LatencyThreshold, ShareThreshold
from modeldeploy.api.status import (
    ActionValues,
    CanaryStatus,
    CheckResult,
    ModelDeploymentStatus,
    PodCounters,
    Verdict,
    VersionStatus,
)
from modeldeploy.api.times import format_time, parse_time, to_seconds
from modeldeploy.rollout import analysis
from modeldeploy.rollout.canary import analysis_due
from modeldeploy.rollout.child_state import ObservedDeployment
from modeldeploy.rollout.metrics import compact, expand, parse_exposition, pod_difference, quantile
from modeldeploy.rollout.report import canary_status, derive_status
from modeldeploy.rollout.sizing import canary_replicas
from modeldeploy.rollout.types import Check, PassFacts, Plan, PlanInputs, VersionPlan
from modeldeploy.rollout.window import Window

from .objects import SAMPLE_SPEC, make_plan, model_deployment, observed_deployment

T0 = "2026-01-01T00:00:00.000Z"


def at(seconds: int) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"2026-01-01T00:{minutes:02d}:{secs:02d}.000Z"  # as the clock writes canary times


def canary_md(**rollout_spec: Any) -> Any:
    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["rollout"] = {
        "strategy": "Canary",
        "steps": [{"weight": 20, "pause": "10s"}, {"weight": 50, "pause": "10s"}],
        "analysis": {"interval": "5s", "failureLimit": 2, "minRequests": 10, "successRate": {"min": 0.95}},
        "progressDeadlineSeconds": 60,
        **rollout_spec,
    }
    return model_deployment(spec)


STABLE_2 = ModelDeploymentStatus(stable=VersionStatus(version=2, replicas=2, ready_replicas=2))


def observed(canary_serving: int = 0, canary_replicas: int = 1) -> dict[int, ObservedDeployment]:
    return {
        2: observed_deployment(2),
        3: observed_deployment(3, replicas=canary_replicas, ready=canary_serving),
    }


def passed(now: str) -> Check:
    return Check(CheckResult(at=now, verdict=Verdict.PASSED, message="ok"))


def failed(now: str) -> Check:
    return Check(
        CheckResult(at=now, verdict=Verdict.FAILED, message="success rate 0.5000 < 0.95 over 20 requests")
    )


def after(plan: Plan, status: ModelDeploymentStatus = STABLE_2) -> ModelDeploymentStatus:
    """The status the reconciler would write from ``plan`` (only the fields the machine reads)."""
    canary = canary_status(plan.canary) if plan.canary is not None else None
    return status.model_copy(update={"canary": canary, "failed_versions": plan.failed_versions})


def test_a_new_version_starts_a_canary_beside_the_stable() -> None:
    plan = make_plan(canary_md(), STABLE_2, {2: observed_deployment(2)}, T0)
    assert plan.serving_version == 2
    assert plan.apply == [VersionPlan(2, 2, "stable"), VersionPlan(3, 1, "canary")]
    assert plan.canary is not None
    assert (plan.canary.version, plan.canary.step, plan.canary.weight) == (3, 0, 20)
    assert plan.canary.started_at == parse_time(T0)
    assert plan.route_weight == 0  # no canary pod serves yet: no traffic


def test_the_step_starts_only_when_canary_pods_serve() -> None:
    waiting = make_plan(canary_md(), STABLE_2, observed(canary_serving=0), at(5))
    assert waiting.canary is not None
    assert waiting.canary.step_started_at is None
    serving = make_plan(canary_md(), after(waiting), observed(canary_serving=1), at(6))
    assert serving.canary is not None
    assert serving.canary.step_started_at == parse_time(at(6))
    assert serving.route_weight == 20


def test_a_step_advances_after_its_pause_and_a_passing_check() -> None:
    md = canary_md()
    first = make_plan(md, STABLE_2, observed(1), at(0))
    held = make_plan(md, after(first), observed(1), at(12))  # pause over, no check yet
    assert held.canary is not None
    assert held.canary.step == 0
    moved = make_plan(md, after(held), observed(1), at(13), PlanInputs(check=passed(at(13))))
    assert moved.canary is not None
    assert moved.canary.step == 1
    assert moved.canary.analysis.passed == 1
    assert moved.canary.analysis.step_passed == 0
    # The 50% step's replicas in the same plan; the step starts once they serve.
    assert VersionPlan(3, 2, "canary") in moved.apply
    assert moved.canary.step_started_at is None


def test_a_step_whose_pods_already_serve_starts_in_the_pass_that_reaches_it() -> None:
    # One status write per move: no "step 2, waiting" written a moment before "step 2 started".
    md = canary_md(steps=[{"weight": 20, "pause": "10s"}, {"weight": 40, "pause": "10s"}], analysis=None)
    first = make_plan(md, STABLE_2, observed(1), at(0))
    moved = make_plan(md, after(first), observed(1), at(10))
    assert moved.canary is not None
    assert (moved.canary.step, moved.canary.weight) == (1, 40)
    assert moved.canary.step_started_at == parse_time(at(10))
    assert moved.route_weight == 40
    assert moved.requeue_after == 10.0  # its own pause, from now


def test_inconclusive_checks_never_pass_a_step() -> None:
    md = canary_md()
    status = after(make_plan(md, STABLE_2, observed(1), at(0)))
    inconclusive = Check(
        CheckResult(at=at(20), verdict=Verdict.INCONCLUSIVE, message="3 request(s) < minRequests 10")
    )
    plan = make_plan(md, status, observed(1), at(20), PlanInputs(check=inconclusive))
    assert plan.canary is not None
    assert plan.canary.step == 0
    assert plan.canary.analysis.inconclusive == 1


def test_failure_limit_rolls_back_with_the_values() -> None:
    md = canary_md()
    status = after(make_plan(md, STABLE_2, observed(1), at(0)))
    once = make_plan(md, status, observed(1), at(5), PlanInputs(check=failed(at(5))))
    assert once.outcome is None
    assert once.canary is not None
    assert once.canary.analysis.failed == 1
    twice = make_plan(md, after(once), observed(1), at(10), PlanInputs(check=failed(at(10))))
    assert twice.outcome is not None
    assert twice.outcome.result == "RolledBack"
    assert "analysis failed 2 time(s) at step 0: success rate 0.5000 < 0.95" in twice.outcome.reason
    assert twice.canary is None
    assert twice.failed_versions == [3]
    assert 3 in twice.delete
    assert twice.apply == [VersionPlan(2, 2, "stable")]


def test_no_progress_within_the_deadline_rolls_back() -> None:
    md = canary_md()
    status = after(make_plan(md, STABLE_2, observed(0), at(0)))  # pods never serve
    assert make_plan(md, status, observed(0), at(59)).outcome is None
    plan = make_plan(md, status, observed(0), at(61))
    assert plan.outcome is not None
    assert plan.outcome.result == "RolledBack"
    assert plan.outcome.reason.startswith("ProgressDeadlineExceeded: no progress at step 0 for 60s")


def inconclusive(now: str) -> Check:
    return Check(CheckResult(at=now, verdict=Verdict.INCONCLUSIVE, message="3 request(s) < minRequests 10"))


def quiet_md(on_inconclusive: str) -> Any:
    return canary_md(
        analysis={"interval": "5s", "failureLimit": 2, "minRequests": 10, "onInconclusive": on_inconclusive}
    )


def test_inconclusive_at_the_deadline_rolls_back_by_default() -> None:
    md = quiet_md("Rollback")
    status = after(make_plan(md, STABLE_2, observed(1), at(0)))  # the step starts: pods serve
    quiet = after(make_plan(md, status, observed(1), at(55), PlanInputs(check=inconclusive(at(55)))), status)
    plan = make_plan(md, quiet, observed(1), at(61))
    assert plan.outcome is not None
    assert plan.outcome.result == "RolledBack"


def test_on_inconclusive_pause_holds_the_step_until_traffic_arrives() -> None:
    md = quiet_md("Pause")
    status = after(make_plan(md, STABLE_2, observed(1), at(0)))
    quiet = after(make_plan(md, status, observed(1), at(55), PlanInputs(check=inconclusive(at(55)))), status)
    held = make_plan(md, quiet, observed(1), at(61))
    assert held.outcome is None, "held, not rolled back"
    assert held.canary is not None
    assert held.canary.waiting_for_traffic
    assert held.canary.step == 0
    later = make_plan(md, after(held), observed(1), at(300), PlanInputs(check=inconclusive(at(300))))
    assert later.outcome is None
    assert later.canary is not None
    assert later.canary.waiting_for_traffic
    # Traffic arrives: the check passes, the step goes on and the hold ends.
    moving = make_plan(md, after(later), observed(1), at(305), PlanInputs(check=passed(at(305))))
    assert moving.canary is not None
    assert moving.canary.step == 1
    assert not moving.canary.waiting_for_traffic


def test_on_inconclusive_pause_still_rolls_back_a_canary_that_never_serves_or_fails() -> None:
    md = quiet_md("Pause")
    status = after(make_plan(md, STABLE_2, observed(0), at(0)))  # pods never serve
    plan = make_plan(md, status, observed(0), at(61))
    assert plan.outcome is not None
    assert plan.outcome.result == "RolledBack"
    serving = after(make_plan(md, STABLE_2, observed(1), at(0)))
    failing = after(make_plan(md, serving, observed(1), at(55), PlanInputs(check=failed(at(55)))), serving)
    plan = make_plan(md, failing, observed(1), at(61))
    assert plan.outcome is not None
    assert plan.outcome.result == "RolledBack"


def test_after_the_last_step_the_canary_grows_then_becomes_stable() -> None:
    md = canary_md()
    status = STABLE_2.model_copy(
        update={"canary": CanaryStatus(version=3, step=2, started_at=T0, last_progress_at=at(30))}
    )
    growing = make_plan(md, status, observed(1), at(31))
    assert VersionPlan(3, 2, "canary") in growing.apply
    assert growing.outcome is None
    done = make_plan(
        md,
        after(growing),
        {2: observed_deployment(2), 3: observed_deployment(3, replicas=2, ready=2)},
        at(32),
    )
    assert done.outcome is not None
    assert done.outcome.result == "Promoted"
    assert done.serving_version == 3
    assert done.canary is None
    assert done.apply == [VersionPlan(3, 2, "stable")]  # relabelled, same pods
    assert done.delete == [2]


def test_a_rolled_back_version_is_not_rolled_again_by_a_resync() -> None:
    status = STABLE_2.model_copy(update={"failed_versions": [3]})
    plan = make_plan(canary_md(), status, {2: observed_deployment(2)}, at(0))
    assert plan.canary is None
    assert plan.held_back is not None
    assert plan.apply == [VersionPlan(2, 2, "stable")]


def test_retry_annotation_rolls_a_failed_version_again_once() -> None:
    status = STABLE_2.model_copy(update={"failed_versions": [3]})
    plan = make_plan(
        canary_md(), status, {2: observed_deployment(2)}, at(0), PlanInputs(actions=ActionValues(retry="t1"))
    )
    assert plan.canary is not None
    assert plan.failed_versions == []
    assert plan.handled.retry == "t1"


def test_abort_annotation_aborts_and_remembers_it_handled() -> None:
    md = canary_md()
    status = after(make_plan(md, STABLE_2, observed(1), at(0)))
    plan = make_plan(md, status, observed(1), at(3), PlanInputs(actions=ActionValues(abort="now")))
    assert plan.outcome is not None
    assert plan.outcome.result == "Aborted"
    assert plan.failed_versions == [3]
    assert plan.handled.abort == "now"


def test_promote_annotation_skips_the_remaining_steps() -> None:
    md = canary_md()
    status = after(make_plan(md, STABLE_2, observed(1), at(0)))
    plan = make_plan(md, status, observed(1), at(2), PlanInputs(actions=ActionValues(promote="go")))
    assert plan.canary is not None
    assert plan.canary.step == 2
    assert plan.canary.manual_promotion
    assert VersionPlan(3, 2, "canary") in plan.apply
    # The same annotation value seen again does nothing more.
    status2 = after(plan).model_copy(update={"handled_actions": ActionValues(promote="go")})
    again = make_plan(md, status2, observed(1), at(3), PlanInputs(actions=ActionValues(promote="go")))
    assert again.handled.promote == "go"


def test_pause_holds_the_step_and_does_not_count_against_the_deadline() -> None:
    paused_md = canary_md(paused=True)
    status = after(make_plan(canary_md(), STABLE_2, observed(1), at(0)))
    held = make_plan(paused_md, status, observed(1), at(50), PlanInputs(check=passed(at(50))))
    assert held.canary is not None
    assert held.canary.paused
    assert held.canary.step == 0
    assert held.requeue_after is None
    later = at(300)
    resumed = make_plan(canary_md(), after(held), observed(1), later)
    assert resumed.outcome is None  # five paused minutes are not a stalled canary
    assert resumed.canary is not None
    assert resumed.canary.last_progress_at == parse_time(later)


@pytest.mark.parametrize("stable", range(1, 11))
@pytest.mark.parametrize("weight", [1, 5, 10, 20, 25, 33, 50, 75, 90, 99])
def test_canary_share_is_within_one_pod_of_the_weight(stable: int, weight: int) -> None:
    kept, canary = canary_replicas(weight, stable, shrink_stable=False)
    assert kept == stable
    assert canary >= 1
    share = canary / (kept + canary)
    assert abs(share - weight / 100) <= 1 / (kept + canary) + 1e-9
    small, canary2 = canary_replicas(weight, stable, shrink_stable=True)
    assert small + canary2 == max(stable, 2) if stable == 1 else small + canary2 == stable
    assert canary2 >= 1
    assert small >= 1


# ----- analysis -----

SPEC = Analysis(
    min_requests=10, success_rate=ShareThreshold(min=0.95), latency_p99_ms=LatencyThreshold(max=250)
)


def test_verdicts() -> None:
    assert analysis.evaluate(Window(5, 0, 10), SPEC, T0).verdict == "Inconclusive"
    ok = analysis.evaluate(Window(100, 1, 10), SPEC, T0)
    assert ok.verdict == "Passed"
    assert ok.success_rate == pytest.approx(0.99)
    bad = analysis.evaluate(Window(100, 10, 10), SPEC, T0)
    assert bad.verdict == "Failed"
    assert "success rate 0.9000 < 0.95" in bad.message
    slow = analysis.evaluate(Window(100, 0, 400), SPEC, T0)
    assert slow.verdict == "Failed"
    assert "p99 latency 400.0ms > 250ms" in slow.message


def test_exposition_is_parsed_per_model_with_tf_serving_names() -> None:
    text = "\n".join(
        [
            "# TYPE :tensorflow:serving:request_count counter",
            ':tensorflow:serving:request_count{model_name="mnist",status="OK"} 90',
            ':tensorflow:serving:request_count{model_name="mnist",status="INTERNAL"} 10',
            ':tensorflow:serving:request_count{model_name="other",status="OK"} 1000',
            ':tensorflow:serving:request_latency_bucket{model_name="mnist",API="predict",le="1000"} 50',
            ':tensorflow:serving:request_latency_bucket{model_name="mnist",API="predict",le="+Inf"} 100',
        ]
    )
    counters = parse_exposition(text, "mnist")
    assert (counters.requests, counters.errors) == (100, 10)
    assert counters.buckets == {"1000": 50, "+Inf": 100}


def test_differences_and_counter_resets() -> None:
    before = PodCounters(requests=100, errors=5, buckets={"10": 100})
    now = PodCounters(requests=150, errors=15, buckets={"10": 150})
    assert pod_difference(now, before) == PodCounters(requests=50, errors=10, buckets={"10": 50})
    restarted = PodCounters(requests=20, errors=0, buckets={"10": 20})
    assert pod_difference(restarted, before) == restarted


def test_buckets_are_kept_compact_and_expand_back() -> None:
    cumulative = {"10": 0.0, "18": 0.0, "32.4": 7.0, "58.32": 7.0, "104.976": 9.0, "+Inf": 9.0}
    kept = compact(cumulative)
    assert kept == {"10": 0.0, "32.4": 7.0, "104.976": 9.0, "+Inf": 9.0}
    assert expand(kept, list(cumulative)) == cumulative


def test_quantile_interpolates_like_prometheus() -> None:
    buckets = {"100": 50.0, "200": 100.0, "+Inf": 100.0}
    assert quantile(0.5, buckets) == pytest.approx(100.0)
    assert quantile(0.99, buckets) == pytest.approx(198.0)
    assert quantile(0.99, {}) is None


def test_analysis_falls_due_each_interval_from_the_step_start() -> None:
    md = canary_md()
    status = STABLE_2.model_copy(update={"canary": CanaryStatus(version=3, step_started_at=at(10))})
    assert not analysis_due(md, status, parse_time(at(14)))
    assert analysis_due(md, status, parse_time(at(15)))


def test_canary_times_keep_milliseconds_and_conditions_whole_seconds() -> None:
    moment = parse_time("2026-01-01T00:00:01.250Z")
    assert format_time(moment) == "2026-01-01T00:00:01.250Z"
    assert parse_time("2026-01-01T00:00:01Z") < moment
    assert to_seconds("2026-01-01T00:00:01.999Z") == "2026-01-01T00:00:01Z"


def test_a_step_ends_when_its_pause_ends_to_the_millisecond() -> None:
    md = canary_md(analysis=None)
    status = after(make_plan(md, STABLE_2, observed(1), "2026-01-01T00:00:00.500Z"))
    early = make_plan(md, status, observed(1), "2026-01-01T00:00:10.400Z")
    assert early.canary is not None
    assert early.canary.step == 0
    assert early.requeue_after == pytest.approx(0.1, abs=1e-6)  # wakes exactly when the pause ends
    due = make_plan(md, status, observed(1), "2026-01-01T00:00:10.500Z")
    assert due.canary is not None
    assert due.canary.step == 1


def test_steps_changed_under_a_running_canary_restart_it_instead_of_promoting() -> None:
    three = canary_md(
        steps=[{"weight": 10, "pause": "5s"}, {"weight": 30, "pause": "5s"}, {"weight": 60, "pause": "5s"}]
    )
    status = STABLE_2.model_copy(
        update={
            "canary": after(make_plan(three, STABLE_2, observed(1), at(0))).canary.model_copy(
                update={"step": 2}
            )
        }
    )
    shorter = canary_md(steps=[{"weight": 20, "pause": "5s"}])
    plan = make_plan(shorter, status, observed(1), at(3))
    assert plan.canary is not None
    assert plan.canary.step == 0
    assert plan.outcome is None
    assert plan.canary.weight == 20
    # Unchanged steps keep their place.
    same = make_plan(three, status, observed(1), at(3))
    assert same.canary is not None
    assert same.canary.step == 2


def test_shrinking_the_stable_waits_for_canary_pods_that_serve() -> None:
    """shrinkStable with 2 stable pods: the 50% step wants 1 + 1; the stable gives up its
    second pod only once the canary pod serves."""
    md = canary_md(shrinkStable=True, steps=[{"weight": 50, "pause": "10s"}])
    waiting = make_plan(md, STABLE_2, observed(canary_serving=0), at(0))
    assert VersionPlan(2, 2, "stable") in waiting.apply
    assert VersionPlan(3, 1, "canary") in waiting.apply
    serving = make_plan(md, after(waiting), observed(canary_serving=1), at(1))
    assert VersionPlan(2, 1, "stable") in serving.apply


def test_a_growing_canary_never_takes_all_traffic_before_its_pods_serve() -> None:
    md = canary_md(shrinkStable=True, steps=[{"weight": 50, "pause": "10s"}])
    status = STABLE_2.model_copy(
        update={"canary": CanaryStatus(version=3, step=1, started_at=T0, last_progress_at=at(30))}
    )
    growing = make_plan(md, status, observed(canary_serving=1, canary_replicas=2), at(31))
    assert growing.canary is not None
    assert growing.route_weight < 100  # one of two canary pods serves beside two stable pods
    assert VersionPlan(2, 2, "stable") in growing.apply


def test_steps_whose_pause_is_over_all_pass_in_the_pass_that_reaches_them() -> None:
    steps = [{"weight": 20, "pause": "0s"}, {"weight": 40, "pause": "0s"}, {"weight": 60, "pause": "10s"}]
    md = canary_md(steps=steps, analysis=None)
    plan = make_plan(md, STABLE_2, observed(canary_serving=3, canary_replicas=3), at(0))
    assert plan.canary is not None
    assert (plan.canary.step, plan.canary.weight, plan.canary.step_started_at) == (2, 60, parse_time(at(0)))
    assert plan.route_weight == 60
    assert plan.requeue_after == 10.0


def test_promote_one_step_passes_the_current_step_only_and_full_passes_them_all() -> None:
    md = canary_md()
    status = after(make_plan(md, STABLE_2, observed(1), at(0)))
    step = make_plan(md, status, observed(1), at(2), PlanInputs(actions=ActionValues(promote="step:t1")))
    assert step.canary is not None
    assert step.canary.step == 1, "one step: from the first to the second"
    assert not step.canary.manual_promotion
    assert step.handled.promote == "step:t1"
    handled = after(step).model_copy(update={"handled_actions": step.handled})
    full = make_plan(md, handled, observed(1), at(3), PlanInputs(actions=ActionValues(promote="full:t2")))
    assert full.canary is not None
    assert full.canary.step == 2
    assert full.canary.manual_promotion


def manual_md(**rollout_spec: Any) -> Any:
    steps = [{"weight": 20, "pause": "Manual"}, {"weight": 50, "pause": "10s"}]
    return canary_md(steps=steps, analysis=None, **rollout_spec)


def test_a_manual_step_holds_until_promoted_without_running_into_the_deadline() -> None:
    md = manual_md()
    status = after(make_plan(md, STABLE_2, observed(1), at(0)))  # the step starts: its pod serves
    held = make_plan(md, status, observed(1), at(600))  # ten minutes on, deadline 60 s
    assert held.outcome is None, "waiting for a person is not a stall"
    assert held.canary is not None
    assert held.canary.step == 0
    assert held.canary.waiting_for_promote
    assert held.requeue_after is None, "nothing to wake for but the promote annotation"
    shown = derive_status(md, held, status, PassFacts(observed(1), parse_time(at(600))))
    progressing = next(c for c in shown.conditions if c.type == "Progressing")
    assert progressing.reason == "WaitingForPromote"
    assert progressing.message.startswith("waiting for promote at step 1")
    assert shown.canary is not None
    assert shown.canary.waiting_for_promote is True
    go = PlanInputs(actions=ActionValues(promote="step:t1"))
    promoted = make_plan(md, after(held), observed(1), at(601), go)
    assert promoted.canary is not None
    assert promoted.canary.step == 1
    assert not promoted.canary.waiting_for_promote


def test_a_manual_step_counts_against_the_deadline_when_the_spec_says_so() -> None:
    md = manual_md(countManualPauses=True)
    status = after(make_plan(md, STABLE_2, observed(1), at(0)))
    late = make_plan(md, status, observed(1), at(600))
    assert late.outcome is not None
    assert late.outcome.result == "RolledBack"
    assert "ProgressDeadlineExceeded" in late.outcome.reason
