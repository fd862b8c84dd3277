"""Each status condition as one small pure function of the pass's situation.

A function says only whether its condition holds, why and what it means; the
status module stamps the transition time and the generation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..api.conditions import ConditionType, Reason
from ..api.spec import ModelDeployment
from ..api.status import HistoryEntry, Phase, RolloutResult, Verdict
from .child_state import ObservedDeployment
from .types import CanaryState, PassFacts, Plan, reason_code


@dataclass(frozen=True)
class Judgement:
    """A condition before it is stamped: holds or not, why, and what it means for a person."""

    type: ConditionType
    ok: bool
    reason: str
    message: str


@dataclass(frozen=True)
class Problem:
    """What a person must fix: the Degraded condition's reason and message."""

    reason: str
    message: str


@dataclass(frozen=True)
class Situation:
    """Everything the conditions read about one pass, worked out once."""

    md: ModelDeployment
    plan: Plan
    facts: PassFacts
    target: ObservedDeployment | None
    serving: ObservedDeployment | None
    rolled_back: Problem | None  # the requested version was rolled back or aborted
    problem: Problem | None  # what Degraded says; judged from the fields above

    @property
    def canary(self) -> CanaryState | None:
        return self.plan.canary

    @property
    def steps(self) -> int:
        return len(self.md.spec.rollout.effective_steps())

    @property
    def rolled_out(self) -> bool:
        target = self.target
        plan = self.plan
        return (
            plan.serving_version == plan.target_version
            and target is not None
            and target.complete
            and plan.canary is None
        )

    @property
    def ready(self) -> bool:
        return self.rolled_out and self.problem is None


def situation(md: ModelDeployment, plan: Plan, facts: PassFacts, history: list[HistoryEntry]) -> Situation:
    observed = facts.observed
    serving = observed.get(plan.serving_version) if plan.serving_version is not None else None
    target = observed.get(plan.target_version)
    rolled_back = rollback_problem(plan, history)
    unjudged = Situation(md, plan, facts, target, serving, rolled_back, problem=None)
    return replace(unjudged, problem=degraded_problem(unjudged))


def rollback_problem(plan: Plan, history: list[HistoryEntry]) -> Problem | None:
    """Why the requested version is held back, when it was rolled back or aborted."""
    outcome = plan.outcome
    if outcome is not None and outcome.result is not RolloutResult.PROMOTED:
        return Problem(
            reason_code(outcome.reason) or outcome.result,
            f"version {outcome.version} {outcome.result.lower()}: {outcome.reason}",
        )
    if plan.held_back is not None:
        last = next((h for h in reversed(history) if h.version == plan.target_version), None)
        if last is None:
            return Problem(RolloutResult.ROLLED_BACK, plan.held_back)
        return Problem(reason_code(last.reason) or last.result, f"{plan.held_back} ({last.reason})")
    return None


def degraded_problem(s: Situation) -> Problem | None:
    """What a person must fix, most specific first."""
    facts = s.facts
    if facts.spec_problem is not None:
        return Problem(Reason.INVALID_SPEC, facts.spec_problem)
    if facts.rejected is not None:
        return Problem(facts.rejected_reason or Reason.APPLY_REJECTED, facts.rejected)
    if s.rolled_back is not None:
        return s.rolled_back
    if facts.pre_traffic_blocked is not None:
        # The checks cannot run as configured (or the serving version's new pod failed them):
        # the pods stay shut until the user fixes it. Never a pass.
        return Problem(Reason.PRE_TRAFFIC_BLOCKED, facts.pre_traffic_blocked)
    version = s.plan.target_version
    if facts.fetch_failure is not None:
        failure = facts.fetch_failure
        return Problem(
            Reason.MODEL_FETCH_FAILED,
            f"version {version}: model fetch failed in pod {failure.pod}: {failure.message}",
        )
    if s.target is not None and s.target.deadline_exceeded:
        deadline = s.md.spec.rollout.progress_deadline_seconds
        return Problem(
            Reason.PROGRESS_DEADLINE_EXCEEDED,
            f"version {version} did not become ready within {deadline}s: "
            f"{s.target.conditions['Progressing'].message}",
        )
    return None


def available(s: Situation) -> Judgement:
    """Some version answers requests."""
    serving = s.serving
    if serving is not None and serving.serving_replicas > 0:
        message = f"version {serving.version}: {serving.serving_replicas} pod(s) serving"
        return Judgement(ConditionType.AVAILABLE, True, Reason.MINIMUM_REPLICAS_READY, message)
    if serving is not None and serving.spec_replicas == 0:
        return Judgement(
            ConditionType.AVAILABLE, False, Reason.SCALED_TO_ZERO, "replicas is 0: nothing serves"
        )
    return Judgement(
        ConditionType.AVAILABLE, False, Reason.NO_READY_REPLICAS, "no version has a serving pod yet"
    )


def degraded(s: Situation) -> Judgement:
    if s.problem is None:
        return Judgement(ConditionType.DEGRADED, False, Reason.AS_EXPECTED, "no problem observed")
    return Judgement(ConditionType.DEGRADED, True, s.problem.reason, s.problem.message)


def canary_summary(canary: CanaryState, steps: int) -> str:
    a = canary.analysis
    step = f"promoting (after {steps} step(s))" if canary.step >= steps else f"step {canary.step + 1}/{steps}"
    return (
        f"canary version {canary.version}: {step} at {canary.weight}% weight, "
        f"{canary.ready_replicas}/{canary.replicas} canary pod(s) serving; analysis {a.passed} passed, "
        f"{a.failed} failed, {a.inconclusive} inconclusive" + (" (paused)" if canary.paused else "")
    )


def progressing(s: Situation) -> Judgement:
    canary, plan = s.canary, s.plan
    if s.problem is not None:
        message = (
            f"the rollout of version {plan.target_version} stopped: nothing moves until the spec changes"
        )
        return Judgement(ConditionType.PROGRESSING, False, s.problem.reason, message)
    if canary is not None and canary.waiting_for_traffic and not canary.paused:
        message = (
            f"held at step {canary.step + 1}: its checks stay Inconclusive past "
            f"{s.md.spec.rollout.progress_deadline_seconds}s (analysis.onInconclusive Pause); it goes on "
            f"when traffic arrives, or promote or abort it; {canary_summary(canary, s.steps)}"
        )
        return Judgement(ConditionType.PROGRESSING, True, Reason.WAITING_FOR_TRAFFIC, message)
    waiting = canary.pre_traffic.waiting_for if canary is not None and canary.pre_traffic else None
    if canary is not None and waiting is not None and not canary.paused:
        # Its pods stay shut until the checks can compare: said, so a stuck canary has a why.
        summary = canary_summary(canary, s.steps)
        message = f"pre-traffic checks of version {canary.version}: {waiting}; {summary}"
        return Judgement(ConditionType.PROGRESSING, True, Reason.WAITING_FOR_COMPARISON, message)
    if canary is not None and canary.webhook_wait is not None and not canary.paused:
        reason, said = canary.webhook_wait
        message = f"{said}; {canary_summary(canary, s.steps)}"
        return Judgement(ConditionType.PROGRESSING, True, reason, message)
    if canary is not None and canary.waiting_for_promote and not canary.paused:
        message = f"waiting for promote at step {canary.step + 1}; {canary_summary(canary, s.steps)}"
        return Judgement(ConditionType.PROGRESSING, True, Reason.WAITING_FOR_PROMOTE, message)
    if canary is not None:
        reason = Reason.PAUSED if canary.paused else Reason.CANARY_PROGRESSING
        return Judgement(ConditionType.PROGRESSING, True, reason, canary_summary(canary, s.steps))
    if s.rolled_out:
        message = f"version {plan.target_version} is rolled out"
        return Judgement(ConditionType.PROGRESSING, False, Reason.ROLLOUT_COMPLETE, message)
    beside = f" while version {plan.serving_version} serves" if plan.rolling and s.serving else ""
    message = f"rolling out version {plan.target_version}{beside}"
    return Judgement(ConditionType.PROGRESSING, True, Reason.ROLLING_OUT, message)


def model_loaded(s: Situation) -> Judgement:
    """The requested version is loaded and AVAILABLE in some pod."""
    version = s.plan.target_version
    serving = s.serving
    if s.rolled_back is not None and serving is not None and serving.version != version:
        # The requested version runs nowhere now: what is loaded is the version that serves.
        loaded = serving.serving_replicas > 0
        message = (
            f"version {serving.version} (serving): {serving.serving_replicas} pod(s) report it AVAILABLE"
        )
        reason = Reason.VERSION_AVAILABLE if loaded else Reason.LOADING
        return Judgement(ConditionType.MODEL_LOADED, loaded, reason, message)
    if s.facts.fetch_failure is not None:
        message = f"version {version}: {s.facts.fetch_failure.message}"
        return Judgement(ConditionType.MODEL_LOADED, False, Reason.FETCH_FAILED, message)
    if s.target is not None and s.target.serving_replicas > 0:
        message = f"version {version}: {s.target.serving_replicas} pod(s) report it AVAILABLE"
        return Judgement(ConditionType.MODEL_LOADED, True, Reason.VERSION_AVAILABLE, message)
    message = f"version {version}: no pod reports it AVAILABLE yet"
    return Judgement(ConditionType.MODEL_LOADED, False, Reason.LOADING, message)


def canary_healthy(s: Situation) -> Judgement:
    """The canary's latest analysis check, or how the last canary ended."""
    kind = ConditionType.CANARY_HEALTHY
    canary = s.canary
    if canary is None:
        if s.rolled_back is not None:
            return Judgement(kind, False, s.rolled_back.reason, f"the last canary: {s.rolled_back.message}")
        return Judgement(kind, True, Reason.NO_CANARY, "no canary in progress")
    last = canary.analysis.last_check
    if last is None:
        return Judgement(kind, True, Reason.NO_CHECKS_YET, "waiting for the first check")
    if last.verdict is Verdict.FAILED:
        return Judgement(kind, False, Reason.ANALYSIS_FAILED, last.message)
    if last.reason:
        return Judgement(kind, True, last.reason, last.message)
    reason = Reason.ANALYSIS_PASSING if last.verdict is Verdict.PASSED else Reason.INCONCLUSIVE
    return Judgement(kind, True, reason, last.message)


def ready(s: Situation, progressing: Judgement) -> Judgement:
    """The requested version serves with every replica and nothing is wrong."""
    if s.ready:
        message = f"version {s.plan.target_version} serves"
        return Judgement(ConditionType.READY, True, Reason.ROLLOUT_COMPLETE, message)
    if s.problem is not None:
        return Judgement(ConditionType.READY, False, s.problem.reason, _serving_instead(s))
    reason = Reason.CANARY_IN_PROGRESS if s.canary is not None else Reason.ROLLING_OUT
    return Judgement(
        ConditionType.READY, False, reason, f"version {s.plan.target_version} is not rolled out yet"
    )


def _serving_instead(s: Situation) -> str:
    """Ready's outcome while something is wrong: what serves in place of the requested version."""
    target, serving = s.plan.target_version, s.serving
    if serving is not None and serving.version != target and serving.serving_replicas > 0:
        return f"version {target} does not serve; version {serving.version} serves instead"
    if serving is not None and serving.serving_replicas > 0:
        return f"version {target} serves, but needs attention (see Degraded)"
    return f"version {target} does not serve, and no other version does"


def reconciling(s: Situation, progressing: Judgement) -> Judgement:
    """kstatus' Reconciling: the operator still moves towards the spec (a canary, a paused
    one included, a first rollout)."""
    if s.ready:
        return Judgement(ConditionType.RECONCILING, False, Reason.ROLLOUT_COMPLETE, "the spec is met")
    if s.problem is not None:
        message = "stopped: see the Stalled condition"
        return Judgement(ConditionType.RECONCILING, False, s.problem.reason, message)
    message = f"working towards version {s.plan.target_version} ({progressing.reason})"
    return Judgement(ConditionType.RECONCILING, True, progressing.reason, message)


def stalled(s: Situation, progressing: Judgement) -> Judgement:
    """kstatus' Stalled: the operator cannot get to the spec without a person (what Degraded says)."""
    if s.problem is not None:
        message = f"{s.problem.message}; to go on: {_unblocks(s)}"
        return Judgement(ConditionType.STALLED, True, s.problem.reason, message)
    reason = Reason.ROLLOUT_COMPLETE if s.ready else progressing.reason
    return Judgement(ConditionType.STALLED, False, reason, "nothing needs a person")


def _unblocks(s: Situation) -> str:
    """What a person does to let the operator go on, by what stopped it."""
    facts = s.facts
    if facts.spec_problem is not None:
        return "fix the spec"
    if facts.rejected is not None:
        return "fix what the API server refuses"
    if s.rolled_back is not None:
        return "set a new version, or the retry annotation to roll this one again"
    if facts.pre_traffic_blocked is not None:
        return "fix the pre-traffic checks' configuration"
    if facts.fetch_failure is not None:
        return "fix the model's storage or its credentials"
    return "fix the version, or set another one"


def phase(s: Situation, available: Judgement) -> Phase:
    if s.ready:
        return Phase.READY
    if s.problem is not None:
        # A bad spec or a rolled-back canary is the user's to act on (Degraded); a
        # version that failed with nothing else serving leaves the model unavailable (Failed).
        serving_ok = (
            available.ok
            or s.facts.spec_problem is not None
            or s.facts.rejected is not None
            # A rollback leaves the version before serving; a first version has none.
            or (s.rolled_back is not None and s.plan.serving_version is not None)
        )
        return Phase.DEGRADED if serving_ok else Phase.FAILED
    return Phase.PROGRESSING if available.ok else Phase.PENDING
