"""The canary step machine: how a canary moves through ``rollout.steps``. Pure.

A canary Deployment for the target starts beside the stable one. A step starts
when all its canary pods serve (model-aware: TF Serving reports the exact
version AVAILABLE), holds for its pause, and ends once its pause has passed and
analysis passed at least once in it. ``failureLimit`` failed checks, or
``progressDeadlineSeconds`` without progress, roll back; after the last step the
canary grows to full size and becomes the stable version without restarting its
pods.

One pass runs named phases over one ``CanaryPass`` in order; each returns the
plan when the pass ends there, or None to go on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel

from ..api.actions import parse_promote
from ..api.names import TRACK_CANARY, TRACK_STABLE
from ..api.spec import CanaryStep, ModelDeployment, OnInconclusive
from ..api.status import (
    ActionValues,
    AnalysisStatus,
    ModelDeploymentStatus,
    RolloutResult,
    Verdict,
)
from ..api.webhook_gates import GatePoint, GateResult, OnFailure
from .child_state import ObservedDeployment
from .metrics import with_baselines
from .sizing import canary_replicas, sized, stable_replicas
from .types import CanaryState, Check, Outcome, Plan, PreTrafficVerdict, VersionPlan
from .webhooks import GateOutcome, GatePlace, WebhookAnswer, WebhookCall, judge

_M = TypeVar("_M", bound=BaseModel)

# failedVersions keeps the highest this many: status stays small however often versions fail.
FAILED_VERSIONS_LIMIT = 50
# A canary step waiting for pods is re-checked this often even without a watch event.
WAIT_REQUEUE_SECONDS = 2.0
# The shortest requeue while a step holds: never a busy loop, never a step noticeably late.
MIN_REQUEUE_SECONDS = 0.05


@dataclass
class CanaryPass:
    """One pass of a canary: what it reads, and the canary's state as the phases move it."""

    md: ModelDeployment
    observed: dict[int, ObservedDeployment]
    now: datetime
    stable: int
    target: int
    canary: CanaryState
    failed: list[int]
    handled: ActionValues
    check: Check | None = None  # consumed by the first step planned in this pass
    actions: ActionValues = field(default_factory=ActionValues)
    answers: tuple[WebhookAnswer, ...] = ()  # webhook gate calls that ended since the last pass
    calls: list[WebhookCall] = field(default_factory=list)  # webhook gates to ask now
    steps: tuple[CanaryStep, ...] = field(init=False)
    stable_apply: int | None = field(init=False)  # what the stable Deployment is applied with
    stable_size: int = field(init=False)  # how many pods the stable runs
    canary_ready: int = field(init=False)  # canary pods serving

    def __post_init__(self) -> None:
        self.steps = self.md.spec.rollout.effective_steps()
        self.stable_apply, self.stable_size = stable_replicas(self.md, self.observed.get(self.stable))
        dep = self.observed.get(self.target)
        self.canary_ready = dep.serving_replicas if dep is not None else 0

    @property
    def stale(self) -> list[int]:
        return sorted(v for v in self.observed if v not in (self.stable, self.target))

    def update(self, **changes: Any) -> None:
        self.canary = replace(self.canary, **changes)

    def next_step(self, **changes: Any) -> None:
        """The canary moves to another step: it starts once its pods serve; that is progress."""
        self.update(step_started_at=None, last_progress_at=self.now, waiting_for_traffic=False, **changes)

    def stable_plan(self, replicas: int | None = None) -> VersionPlan:
        applied = self.stable_apply if replicas is None else replicas
        return sized(self.stable, applied, self.stable_size, TRACK_STABLE)

    def ended(self, result: RolloutResult, reason: str) -> Plan:
        """The canary rolled back or aborted: the stable alone serves, the target is failed."""
        return Plan(
            self.stable,
            self.target,
            [self.stable_plan()],
            sorted({*self.stale, self.target}),
            outcome=Outcome(self.target, result, reason),
            failed_versions=sorted({*self.failed, self.target})[-FAILED_VERSIONS_LIMIT:],
            handled=self.handled,
        )


def steps_hash(steps: tuple[CanaryStep, ...]) -> str:
    text = ";".join(f"{step.weight}:{step.pause}" for step in steps)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def opening_canary(
    md: ModelDeployment, status: ModelDeploymentStatus, now: datetime, pre_traffic: PreTrafficVerdict | None
) -> CanaryState:
    """The canary this pass starts from: status's when it is the target's and counts in
    the same steps, else a new one (a new version during a canary replaces the old canary)."""
    target = md.spec.model.version
    digest = steps_hash(md.spec.rollout.effective_steps())
    written = status.canary
    if written is None or written.version != target:
        canary = CanaryState(version=target, started_at=now, last_progress_at=now, steps_hash=digest)
    else:
        canary = CanaryState.from_status(written)
    if canary.steps_hash is None:
        canary = replace(canary, steps_hash=digest)  # written before steps were hashed: adopt them
    elif canary.steps_hash != digest and not canary.manual_promotion:
        # The steps changed under a running canary: its step index means nothing in the new
        # list (a shorter one would skip straight to promotion), so it starts them again.
        canary = replace(
            canary,
            step=0,
            step_started_at=None,
            last_progress_at=now,
            waiting_for_traffic=False,
            steps_hash=digest,
            analysis=_with(canary.analysis, step_passed=0),
        )
    if pre_traffic is not None and pre_traffic.version == target:
        canary = _with_pre_traffic(canary, pre_traffic)
    return canary


def advance_canary(ctx: CanaryPass) -> Plan:
    """Run the phases. A step that ends is followed at once by the next one, planned on
    what this pass observed: where the canary's pods already suffice it starts now, in
    this pass's one status write, not in a second write a moment later."""
    for phase in (_actions, _deadline, _promotion):
        plan = phase(ctx)
        if plan is not None:
            return plan
    while True:
        plan = _step(ctx)
        if plan is not None:
            return plan
        ctx.check = None  # the check counted in the step it was taken in


def _step(ctx: CanaryPass) -> Plan | None:
    """Plan the current step; None when it ended and the next step is to be planned."""
    if _before_traffic(ctx):
        # The canary's pods stay out of service (their model gates shut) until these pass.
        gate = _gate(ctx, GatePoint.PRE_TRAFFIC, 0)
        if gate.rollback is not None:
            return ctx.ended(RolloutResult.ROLLED_BACK, gate.rollback)
    versions = _replicas(ctx)
    route_weight = ctx.canary.weight if _step_serving(ctx) else 0
    ended = _analysis(ctx)
    if ended is not None:
        return ended
    requeue: float | None
    if _step_done(ctx):
        following = ctx.canary.step + 1
        at = GatePoint.STEP if following < len(ctx.steps) else GatePoint.PRE_PROMOTION
        gate = _gate(ctx, at, following)
        if gate.rollback is not None:
            return ctx.ended(RolloutResult.ROLLED_BACK, gate.rollback)
        if gate.open:
            ctx.next_step(step=following, analysis=_with(ctx.canary.analysis, step_passed=0))
            if following < len(ctx.steps):
                return None
            # Past the last step the "steps passed" status stays a write of its own (webhooks
            # hear StepPassed for every step, with the check that passed it); the promotion
            # (the canary grown to the stable's size) follows at once.
            requeue = 0.0
        else:
            requeue = gate.retry_in if gate.retry_in is not None else _wait(ctx)
    else:
        requeue = _wait(ctx)
    return Plan(
        ctx.stable,
        ctx.target,
        versions,
        ctx.stale,
        canary=ctx.canary,
        route_weight=route_weight,
        failed_versions=ctx.failed,
        handled=ctx.handled,
        requeue_after=requeue,
        webhook_calls=tuple(ctx.calls),
    )


def _before_traffic(ctx: CanaryPass) -> bool:
    """The canary has taken no traffic yet: its first step has not started."""
    return ctx.canary.step == 0 and ctx.canary.step_started_at is None


def _gate(ctx: CanaryPass, at: GatePoint, step: int) -> GateOutcome:
    """Judge the webhook gates at ``at`` before ``step``: their answers go to status, the
    gates to ask to the plan, and a hold to the conditions."""
    weight = ctx.steps[step].weight if step < len(ctx.steps) else 100
    place = GatePlace(at, step, ctx.stable, ctx.target, weight, len(ctx.steps))
    outcome = judge(ctx.md, place, ctx.canary.analysis.webhooks, ctx.answers, ctx.now)
    wait = (outcome.wait.reason, outcome.wait.message) if outcome.wait is not None else None
    ctx.update(analysis=_with(ctx.canary.analysis, webhooks=outcome.records), webhook_wait=wait)
    ctx.calls.extend(outcome.calls)
    return outcome


def _actions(ctx: CanaryPass) -> Plan | None:
    """The abort and promote annotations, each acted on once per new value."""
    actions, handled = ctx.actions, ctx.handled
    if actions.abort is not None and actions.abort != handled.abort:
        ctx.handled = handled.model_copy(update={"abort": actions.abort})
        return ctx.ended(RolloutResult.ABORTED, f"aborted by the abort annotation at step {ctx.canary.step}")
    if actions.promote is not None and actions.promote != handled.promote:
        ctx.handled = handled.model_copy(update={"promote": actions.promote})
        last = len(ctx.steps)
        step = last if parse_promote(actions.promote).full else min(ctx.canary.step + 1, last)
        analysis = _with(ctx.canary.analysis, step_passed=0)
        ctx.next_step(step=step, manual_promotion=step == last, waiting_for_promote=False, analysis=analysis)
    return None


def _deadline(ctx: CanaryPass) -> Plan | None:
    """Progress deadline: no step started or finished for too long rolls back. A pause is
    not a stall, and onInconclusive Pause holds a serving step that lacks traffic."""
    rollout = ctx.md.spec.rollout
    canary = ctx.canary
    since = canary.last_progress_at or ctx.now
    overdue = ctx.now - since > timedelta(seconds=rollout.progress_deadline_seconds)
    if (canary.waiting_for_promote or _held_by_webhook(ctx)) and not rollout.count_manual_pauses:
        # Waiting for a person, or for a Hold gate's yes, is not a stall unless the spec says so.
        overdue = False
    if rollout.paused:
        ctx.update(paused=True)
    elif canary.paused:
        # The deadline counts again from the resume.
        ctx.update(paused=False, last_progress_at=ctx.now, waiting_for_traffic=False)
    elif overdue and _holds_for_traffic(ctx.md, canary):
        ctx.update(waiting_for_traffic=True)
    elif overdue:
        last = canary.analysis.last_check
        detail = f"; last check: {last.message}" if last is not None and last.message else ""
        return ctx.ended(
            RolloutResult.ROLLED_BACK,
            f"ProgressDeadlineExceeded: no progress at step {canary.step} for "
            f"{rollout.progress_deadline_seconds}s ({ctx.canary_ready} canary pod(s) serving){detail}",
        )
    return None


def _held_by_webhook(ctx: CanaryPass) -> bool:
    """A Hold gate refused the canary at the point it waits at: it holds for that gate's yes."""
    analysis = ctx.md.spec.rollout.analysis
    if analysis is None or not analysis.webhooks:
        return False
    if _before_traffic(ctx):
        at, step = GatePoint.PRE_TRAFFIC, 0
    else:
        step = ctx.canary.step + 1
        at = GatePoint.STEP if step < len(ctx.steps) else GatePoint.PRE_PROMOTION
    holding = {g.name for g in analysis.webhooks if g.at is at and g.on_failure is OnFailure.HOLD}
    return any(
        r.name in holding and r.at is at and r.step == step and r.result is GateResult.FAILED
        for r in ctx.canary.analysis.webhooks
    )


def _holds_for_traffic(md: ModelDeployment, canary: CanaryState) -> bool:
    """onInconclusive Pause: a serving step whose latest check was Inconclusive (too little
    traffic) waits for traffic at the deadline instead of rolling back; a failing or
    never-serving canary still rolls back."""
    analysis = md.spec.rollout.analysis
    last = canary.analysis.last_check
    return (
        analysis is not None
        and analysis.on_inconclusive is OnInconclusive.PAUSE
        and canary.step_started_at is not None
        and last is not None
        and last.verdict is Verdict.INCONCLUSIVE
    )


def _promotion(ctx: CanaryPass) -> Plan | None:
    """Past the last step the canary grows to the stable's size, then becomes the stable."""
    if ctx.canary.step < len(ctx.steps):
        return None
    dep = ctx.observed.get(ctx.target)
    size = ctx.stable_size
    if ctx.canary_ready >= size and dep is not None and dep.complete:
        why = (
            "promoted by the promote annotation"
            if ctx.canary.manual_promotion
            else f"passed {len(ctx.steps)} step(s) of analysis"
        )
        return Plan(
            ctx.target,
            ctx.target,
            [sized(ctx.target, ctx.stable_apply, size, TRACK_STABLE)],
            sorted(v for v in ctx.observed if v != ctx.target),
            outcome=Outcome(ctx.target, RolloutResult.PROMOTED, why),
            failed_versions=ctx.failed,
            handled=ctx.handled,
        )
    # While it grows, the stable keeps its size: the canary's share is what its serving
    # pods carry, never all the traffic before every one of them serves.
    carried = min(99, round(100 * ctx.canary_ready / (ctx.canary_ready + size)))
    ctx.update(weight=max(ctx.steps[-1].weight, carried), replicas=size, ready_replicas=ctx.canary_ready)
    return Plan(
        ctx.stable,
        ctx.target,
        [ctx.stable_plan(), VersionPlan(ctx.target, size, TRACK_CANARY)],
        ctx.stale,
        canary=ctx.canary,
        route_weight=ctx.canary.weight,
        failed_versions=ctx.failed,
        handled=ctx.handled,
        requeue_after=WAIT_REQUEUE_SECONDS,
    )


def _replicas(ctx: CanaryPass) -> list[VersionPlan]:
    """The step's pods for each version; the step starts once its canary pods all serve."""
    rollout = ctx.md.spec.rollout
    step = ctx.steps[ctx.canary.step]
    stable_count, canary_count = canary_replicas(step.weight, ctx.stable_size, rollout.shrink_stable)
    if rollout.shrink_stable:
        # The stable gives up only as many pods as canary pods serve: capacity never dips.
        stable_plan = ctx.stable_plan(max(stable_count, ctx.stable_size - ctx.canary_ready))
    else:
        stable_plan = ctx.stable_plan()
    ctx.update(weight=step.weight, replicas=canary_count, ready_replicas=ctx.canary_ready)
    if _step_serving(ctx) and ctx.canary.step_started_at is None and not ctx.canary.paused:
        ctx.update(step_started_at=ctx.now, last_progress_at=ctx.now, waiting_for_traffic=False)
    ctx.update(waiting_for_promote=step.manual and _running(ctx))
    return [stable_plan, VersionPlan(ctx.target, canary_count, TRACK_CANARY)]


def _step_serving(ctx: CanaryPass) -> bool:
    return ctx.canary_ready >= ctx.canary.replicas


def _running(ctx: CanaryPass) -> bool:
    """The step started and is not paused: its clock runs and checks count."""
    return ctx.canary.step_started_at is not None and not ctx.canary.paused


def _analysis(ctx: CanaryPass) -> Plan | None:
    """Count this pass's check; ``failureLimit`` failed checks roll back."""
    check = ctx.check
    if check is None or not _running(ctx):
        return None
    analysis = _record(ctx.canary.analysis, check)
    ctx.update(analysis=analysis)
    spec = ctx.md.spec.rollout.analysis
    limit = spec.failure_limit if spec is not None else 1
    if analysis.failed < limit:
        return None
    return ctx.ended(
        RolloutResult.ROLLED_BACK,
        f"analysis failed {analysis.failed} time(s) at step {ctx.canary.step}: {check.result.message}",
    )


def _held(ctx: CanaryPass) -> timedelta:
    """How long the running step has held."""
    started = ctx.canary.step_started_at
    return ctx.now - started if started is not None else timedelta(0)


def _step_done(ctx: CanaryPass) -> bool:
    """A running step is done once its pause has passed and analysis passed in it at least
    once; it ends when the webhook gates before the next one (or promotion) pass too."""
    if not _running(ctx):
        return False
    pause = ctx.steps[ctx.canary.step].pause_time
    analysed = ctx.md.spec.rollout.analysis is None or ctx.canary.analysis.step_passed >= 1
    return _held(ctx) >= pause and analysed


def _wait(ctx: CanaryPass) -> float | None:
    """When a step that holds is looked at again: at the end of its pause or at its next
    check, whichever comes first; a paused canary waits for its resume."""
    if ctx.canary.paused:
        return None
    if not _running(ctx):
        return WAIT_REQUEUE_SECONDS
    step = ctx.steps[ctx.canary.step]
    held = _held(ctx)
    # A Manual step ends on a promote, whose annotation queues its own pass.
    waits = [(step.pause_time - held).total_seconds()] if held < step.pause_time and not step.manual else []
    spec = ctx.md.spec.rollout.analysis
    if spec is not None:
        waits.append(spec.interval_time.total_seconds())
    if not waits:
        return None if step.manual else WAIT_REQUEUE_SECONDS
    return max(MIN_REQUEUE_SECONDS, min(waits))


def _with_pre_traffic(canary: CanaryState, verdict: PreTrafficVerdict) -> CanaryState:
    """The checks' results, and the counters of each checked pod as the analysis's start:
    the warm-up and golden requests are not the canary's traffic."""
    if verdict.status is not None:
        canary = replace(canary, pre_traffic=verdict.status)
    if verdict.baselines:
        counters = with_baselines(canary.analysis.counters, verdict.baselines)
        canary = replace(canary, analysis=_with(canary.analysis, counters=counters))
    return canary


def _with(model: _M, **changes: object) -> _M:
    """A copy of a frozen status model with some fields changed."""
    return model.model_copy(update=changes)


def _record(analysis: AnalysisStatus, check: Check) -> AnalysisStatus:
    """Count a check, and keep the counters the next one measures from."""
    result = check.result
    counters = check.counters if check.counters is not None else analysis.counters
    stable = check.stable_counters if check.stable_counters is not None else analysis.stable_counters
    recorded = _with(analysis, last_check=result, counters=counters, stable_counters=stable)
    if result.verdict is Verdict.PASSED:
        return _with(recorded, passed=analysis.passed + 1, step_passed=analysis.step_passed + 1)
    if result.verdict is Verdict.FAILED:
        return _with(recorded, failed=analysis.failed + 1)
    return _with(recorded, inconclusive=analysis.inconclusive + 1)


def analysis_due(md: ModelDeployment, status: ModelDeploymentStatus, now: datetime) -> bool:
    """Whether the canary's next analysis check falls due at ``now``."""
    canary = status.canary
    spec = md.spec.rollout.analysis
    if (
        spec is None
        or canary is None
        or canary.version != md.spec.model.version
        or canary.paused
        or md.spec.rollout.paused
    ):
        return False
    since = canary.step_started
    if since is None:  # the step's pods do not all serve yet
        return False
    last = canary.analysis.last_check
    if last is not None and last.checked_at > since:
        since = last.checked_at
    return now - since >= spec.interval_time
