"""The canary step machine: how a canary moves through ``rollout.steps``. Pure.

A canary Deployment for the target starts beside the stable one. A step starts
when all its canary pods serve (model-aware: TF Serving reports the exact
version AVAILABLE), holds for its pause, and ends once its pause has passed and
analysis passed at least once in it. ``failureLimit`` failed checks, or
``progressDeadlineSeconds`` without progress, roll back; after the last step the
canary grows to full size and becomes the stable version without restarting its
pods.
"""

from __future__ import annotations

import hashlib
from typing import TypeVar

from pydantic import BaseModel

from ..api.names import TRACK_CANARY, TRACK_STABLE
from ..api.spec import CanaryStep, ModelDeployment, OnInconclusive
from ..api.status import (
    ActionValues,
    AnalysisStatus,
    CanaryStatus,
    ModelDeploymentStatus,
    RolloutResult,
    Verdict,
)
from ..api.times import parse_duration, parse_time
from .child_state import ObservedDeployment
from .metrics import totals
from .sizing import canary_replicas, sized, stable_replicas
from .types import Check, Outcome, Plan, PreTrafficVerdict, VersionPlan

_M = TypeVar("_M", bound=BaseModel)

# failedVersions keeps the highest this many: status stays small however often versions fail.
FAILED_VERSIONS_LIMIT = 50
# A canary step waiting for pods is re-checked this often even without a watch event.
WAIT_REQUEUE_SECONDS = 2.0


def _holds_for_traffic(md: ModelDeployment, canary: CanaryStatus) -> bool:
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


def steps_hash(steps: tuple[CanaryStep, ...]) -> str:
    text = ";".join(f"{step.weight}:{step.pause}" for step in steps)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def advance_canary(
    md: ModelDeployment,
    status: ModelDeploymentStatus,
    observed: dict[int, ObservedDeployment],
    stable: int,
    target: int,
    now: str,
    check: Check | None,
    actions: ActionValues,
    failed: list[int],
    handled: ActionValues,
    pre_traffic: PreTrafficVerdict | None = None,
) -> Plan:
    rollout = md.spec.rollout
    steps = md.spec.rollout.effective_steps()
    moment = parse_time(now)
    canary = status.canary if status.canary is not None and status.canary.version == target else None
    digest = steps_hash(steps)
    if canary is None:
        # A new canary; a new version during a canary replaces the old canary.
        canary = CanaryStatus(version=target, started_at=now, last_progress_at=now, steps_hash=digest)
    elif canary.steps_hash is None:
        canary = _with(canary, steps_hash=digest)  # written before steps were hashed: adopt them
    elif canary.steps_hash != digest and not canary.manual_promotion:
        # The steps changed under a running canary: its step index means nothing in the new
        # list (a shorter one would skip straight to promotion), so it starts them again.
        canary = _with(
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
    stale = sorted(v for v in observed if v not in (stable, target))
    stable_apply, stable_size = stable_replicas(md, observed.get(stable))
    canary_dep = observed.get(target)
    canary_ready = canary_dep.serving_replicas if canary_dep is not None else 0

    def ended(result: RolloutResult, reason: str) -> Plan:
        history_failed = sorted({*failed, target})[-FAILED_VERSIONS_LIMIT:]
        return Plan(
            stable,
            target,
            [sized(stable, stable_apply, stable_size, TRACK_STABLE)],
            sorted({*stale, target}),
            canary=None,
            outcome=Outcome(target, result, reason),
            failed_versions=history_failed,
            handled=handled,
        )

    if actions.abort is not None and actions.abort != handled.abort:
        handled = handled.model_copy(update={"abort": actions.abort})
        return ended(RolloutResult.ABORTED, f"aborted by the abort annotation at step {canary.step}")
    promote_now = actions.promote is not None and actions.promote != handled.promote
    if promote_now:
        handled = handled.model_copy(update={"promote": actions.promote})
        canary = _with(
            canary,
            step=len(steps),
            step_started_at=None,
            last_progress_at=now,
            waiting_for_traffic=False,
            manual_promotion=True,
        )

    # Progress deadline: no step started or finished for too long.
    overdue = (
        moment - parse_time(canary.last_progress_at or now)
    ).total_seconds() > rollout.progress_deadline_seconds
    if rollout.paused:
        canary = _with(canary, paused=True)
    elif canary.paused:
        # A pause is not a stall: the deadline counts again from the resume.
        canary = _with(canary, paused=False, last_progress_at=now, waiting_for_traffic=False)
    elif overdue and _holds_for_traffic(md, canary):
        canary = _with(canary, waiting_for_traffic=True)
    elif overdue:
        last = canary.analysis.last_check
        detail = f"; last check: {last.message}" if last is not None and last.message else ""
        return ended(
            RolloutResult.ROLLED_BACK,
            f"ProgressDeadlineExceeded: no progress at step {canary.step} for "
            f"{rollout.progress_deadline_seconds}s ({canary_ready} canary pod(s) serving){detail}",
        )

    # Promotion: the canary grows to the stable's size, then becomes the stable.
    if canary.step >= len(steps):
        canary_count = stable_size
        if canary_ready >= canary_count and canary_dep is not None and canary_dep.complete:
            return Plan(
                target,
                target,
                [sized(target, stable_apply, stable_size, TRACK_STABLE)],
                sorted(v for v in observed if v != target),
                canary=None,
                outcome=Outcome(
                    target,
                    RolloutResult.PROMOTED,
                    "promoted by the promote annotation"
                    if canary.manual_promotion
                    else f"passed {len(steps)} step(s) of analysis",
                ),
                failed_versions=failed,
                handled=handled,
            )
        canary = _with(
            canary,
            # While it grows, the stable keeps its size: the canary's share is what its serving
            # pods carry, never all the traffic before every one of them serves.
            weight=max(steps[-1].weight, min(99, round(100 * canary_ready / (canary_ready + stable_size)))),
            replicas=canary_count,
            ready_replicas=canary_ready,
        )
        return Plan(
            stable,
            target,
            [
                sized(stable, stable_apply, stable_size, TRACK_STABLE),
                VersionPlan(target, canary_count, TRACK_CANARY),
            ],
            stale,
            canary=canary,
            canary_weight=canary.weight,
            failed_versions=failed,
            handled=handled,
            requeue_after=WAIT_REQUEUE_SECONDS,
        )

    step = steps[canary.step]
    stable_count, canary_count = canary_replicas(step.weight, stable_size, rollout.shrink_stable)
    if rollout.shrink_stable:
        # The stable gives up only as many pods as canary pods serve: capacity never dips.
        stable_count = max(stable_count, stable_size - canary_ready)
    stable_plan = sized(
        stable, stable_count if rollout.shrink_stable else stable_apply, stable_size, TRACK_STABLE
    )
    versions = [stable_plan, VersionPlan(target, canary_count, TRACK_CANARY)]
    canary = _with(canary, weight=step.weight, replicas=canary_count, ready_replicas=canary_ready)
    requeue: float | None = WAIT_REQUEUE_SECONDS

    step_serving = canary_ready >= canary_count
    if step_serving and canary.step_started_at is None and not canary.paused:
        canary = _with(canary, step_started_at=now, last_progress_at=now, waiting_for_traffic=False)

    analysis = canary.analysis
    if check is not None and canary.step_started_at is not None and not canary.paused:
        analysis = _record(analysis, check)
        canary = _with(canary, analysis=analysis)
        limit = rollout.analysis.failure_limit if rollout.analysis else 1
        if analysis.failed >= limit:
            return ended(
                RolloutResult.ROLLED_BACK,
                f"analysis failed {analysis.failed} time(s) at step {canary.step}: {check.result.message}",
            )

    if canary.step_started_at is not None and not canary.paused:
        held = (moment - parse_time(canary.step_started_at)).total_seconds()
        pause = parse_duration(step.pause)
        analysed = rollout.analysis is None or analysis.step_passed >= 1
        if held >= pause and analysed:
            canary = _with(
                canary,
                step=canary.step + 1,
                step_started_at=None,
                last_progress_at=now,
                waiting_for_traffic=False,
                analysis=_with(analysis, step_passed=0),
            )
            if canary.step < len(steps):
                # The next step planned at once, on what this pass observed: where the
                # canary's pods already suffice it starts now, in this pass's one status
                # write, not in a second write a moment later; where they do not, status
                # shows the step waiting for its pods for as long as that lasts. (Past the
                # last step the "steps passed" status stays a write of its own: webhooks
                # hear StepPassed for every step, with the check that passed it.)
                return advance_canary(
                    md,
                    status.model_copy(update={"canary": canary}),
                    observed,
                    stable,
                    target,
                    now,
                    None,
                    actions,
                    failed,
                    handled,
                )
            requeue = 0.0  # the promotion (the canary grown to the stable's size) at once
        else:
            waits = [pause - held] if held < pause else []
            if rollout.analysis is not None:
                waits.append(parse_duration(rollout.analysis.interval))
            # 50ms floor: never a busy loop, never a step noticeably late.
            requeue = max(0.05, min(waits)) if waits else WAIT_REQUEUE_SECONDS
    if canary.paused:
        requeue = None
    weight = step.weight if step_serving else 0
    return Plan(
        stable,
        target,
        versions,
        stale,
        canary=canary,
        canary_weight=weight,
        failed_versions=failed,
        handled=handled,
        requeue_after=requeue,
    )


def _with_pre_traffic(canary: CanaryStatus, verdict: PreTrafficVerdict) -> CanaryStatus:
    """The checks' results, and the counters of each checked pod as the analysis's start:
    the warm-up and golden requests are not the canary's traffic."""
    if verdict.status is not None:
        canary = _with(canary, pre_traffic=verdict.status)
    if verdict.baselines:
        counters = canary.analysis.counters
        pods = {**verdict.baselines, **(counters.pods if counters is not None else {})}
        canary = _with(canary, analysis=_with(canary.analysis, counters=totals(pods)))
    return canary


def _with(model: _M, **changes: object) -> _M:
    """A copy of a frozen status model with some fields changed."""
    return model.model_copy(update=changes)


def _record(analysis: AnalysisStatus, check: Check) -> AnalysisStatus:
    """Count a check, and keep the counters the next one measures from."""
    result = check.result
    counters = check.counters if check.counters is not None else analysis.counters
    recorded = _with(analysis, last_check=result, counters=counters)
    if result.verdict is Verdict.PASSED:
        return _with(recorded, passed=analysis.passed + 1, step_passed=analysis.step_passed + 1)
    if result.verdict is Verdict.FAILED:
        return _with(recorded, failed=analysis.failed + 1)
    return _with(recorded, inconclusive=analysis.inconclusive + 1)


def analysis_due(md: ModelDeployment, status: ModelDeploymentStatus, now: str) -> bool:
    """Whether the canary's next analysis check falls due at ``now``."""
    canary = status.canary
    spec = md.spec.rollout.analysis
    if (
        spec is None
        or canary is None
        or canary.version != md.spec.model.version
        or canary.step_started_at is None
        or canary.paused
        or md.spec.rollout.paused
    ):
        return False
    last = canary.analysis.last_check
    since = parse_time(canary.step_started_at)
    if last is not None and parse_time(last.at) > since:
        since = parse_time(last.at)
    return (parse_time(now) - since).total_seconds() >= parse_duration(spec.interval)
