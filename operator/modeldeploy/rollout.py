"""Which model versions run, at what size, which one serves, and how a canary moves: pure.

(spec, previous status, observed Deployments, now, analysis result, one-shot
actions) -> a Plan. The reconciler applies the plan; nothing here talks to the
API server or reads a clock, so every transition is unit-tested.

Strategy Immediate (and the first rollout of any strategy): the target version's
Deployment runs beside the serving one, which is removed only once the target
serves with every replica.

Strategy Canary: a canary Deployment for the target starts beside the stable one
and moves through ``rollout.steps``. A step starts when all its canary pods serve
(model-aware: TF Serving reports the exact version AVAILABLE), holds for its
pause, and ends once its pause has passed and analysis passed at least once in
it. ``failureLimit`` failed checks, or ``progressDeadlineSeconds`` without
progress, roll back; after the last step the canary grows to full size and
becomes the stable version without restarting its pods.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field, replace
from typing import TypeVar

from pydantic import BaseModel

from .models import (
    AnalysisStatus,
    CanaryStatus,
    CanaryStep,
    CheckResult,
    HistoryEntry,
    ModelDeployment,
    ModelDeploymentStatus,
    Strategy,
    parse_duration,
)
from .observed import ObservedDeployment

_M = TypeVar("_M", bound=BaseModel)

TRACK_STABLE = "stable"
TRACK_CANARY = "canary"
DEFAULT_STEPS = (CanaryStep(weight=10, pause="60s"), CanaryStep(weight=50, pause="60s"))
# A canary step waiting for pods is re-checked this often even without a watch event.
WAIT_REQUEUE_SECONDS = 2.0


@dataclass(frozen=True)
class VersionPlan:
    version: int
    replicas: int | None  # None: an HPA owns the count
    track: str
    # With an HPA: the size to hand the count over at (new Deployments, promoted canaries).
    initial_replicas: int | None = None


@dataclass(frozen=True)
class Outcome:
    """A canary that ended: Promoted, RolledBack or Aborted, with the reason."""

    version: int
    result: str
    reason: str


@dataclass(frozen=True)
class Actions:
    """Values of the one-shot annotations on the resource right now."""

    promote: str | None = None
    abort: str | None = None
    retry: str | None = None


@dataclass(frozen=True)
class Plan:
    serving_version: int | None
    target_version: int
    apply: list[VersionPlan] = field(default_factory=list)
    delete: list[int] = field(default_factory=list)
    canary: CanaryStatus | None = None
    canary_weight: int = 0  # share of traffic the router sends to the canary
    outcome: Outcome | None = None
    failed_versions: list[int] = field(default_factory=list)
    handled: Actions = Actions()
    held_back: str | None = None  # why the target is not being rolled out
    requeue_after: float | None = None

    @property
    def rolling(self) -> bool:
        return self.serving_version != self.target_version


# ----- time and replica helpers -----


def parse_time(text: str) -> datetime.datetime:
    """RFC 3339 in UTC, with or without fractional seconds."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(datetime.UTC)


def format_time(moment: datetime.datetime) -> str:
    """RFC 3339 with milliseconds, as status carries canary times."""
    return moment.astimezone(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_seconds(text: str) -> str:
    """A timestamp at whole seconds: metav1 times (conditions, history) carry no fraction."""
    return parse_time(text).strftime("%Y-%m-%dT%H:%M:%SZ")


def canary_replicas(weight: int, stable: int, shrink_stable: bool) -> tuple[int, int]:
    """(stable, canary) replica counts whose canary share is within one pod's share of ``weight``.

    Keeping the stable at full size adds canary pods (c / (N + c) ~ w); shrinking
    it keeps the total at N (c / N ~ w), for GPU budgets.
    """
    stable = max(stable, 1)
    if weight <= 0:
        return stable, 0
    if weight >= 100:
        return (0 if shrink_stable else stable), stable
    if shrink_stable:
        canary = min(max(1, round(weight * stable / 100)), stable - 1) if stable > 1 else 1
        return max(stable - canary, 1), canary
    return stable, max(1, round(weight * stable / (100 - weight)))


def steps_of(md: ModelDeployment) -> tuple[CanaryStep, ...]:
    return tuple(md.spec.rollout.steps) or DEFAULT_STEPS


# ----- the plan -----


def _previous_serving(
    status: ModelDeploymentStatus, observed: dict[int, ObservedDeployment], target: int
) -> int | None:
    """The version that served before this pass: status first, else any complete other Deployment."""
    if status.stable is not None and status.stable.version in observed:
        return status.stable.version
    complete = [v for v, dep in observed.items() if v != target and dep.complete]
    return max(complete) if complete else None


def _sized(version: int, replicas: int | None, size_now: int, track: str) -> VersionPlan:
    return VersionPlan(version, replicas, track, initial_replicas=size_now if replicas is None else None)


def _stable_size(md: ModelDeployment, observed: ObservedDeployment | None) -> tuple[int | None, int]:
    """(replicas to apply, replicas it has): None to apply leaves the count to the HPA."""
    if md.spec.autoscaling is None:
        return md.spec.desired_replicas, md.spec.desired_replicas
    current = observed.spec_replicas if observed is not None else md.spec.autoscaling.min_replicas
    return None, max(current, md.spec.autoscaling.min_replicas)


def plan(
    md: ModelDeployment,
    status: ModelDeploymentStatus,
    observed: dict[int, ObservedDeployment],
    now: str,
    check: CheckResult | None = None,
    actions: Actions = Actions(),
) -> Plan:
    target = md.spec.model.version
    failed = list(status.failed_versions)
    handled = Actions(
        promote=status.handled_actions.promote if status.handled_actions else None,
        abort=status.handled_actions.abort if status.handled_actions else None,
        retry=status.handled_actions.retry if status.handled_actions else None,
    )
    if actions.retry is not None and actions.retry != handled.retry:
        handled = replace(handled, retry=actions.retry)
        failed = [v for v in failed if v != target]
    previous = _previous_serving(status, observed, target)
    if previous is not None and previous != target and target in failed:
        # Rolled back before: a re-sync of the same spec must not roll it again.
        stable_apply, size_now = _stable_size(md, observed.get(previous))
        return Plan(
            previous,
            target,
            [_sized(previous, stable_apply, size_now, TRACK_STABLE)],
            sorted(v for v in observed if v != previous),
            held_back=f"version {target} was rolled back; set a new version or the retry annotation",
            failed_versions=failed,
            handled=handled,
        )
    if md.spec.rollout.strategy is Strategy.IMMEDIATE or previous is None or previous == target:
        return _immediate(md, observed, previous, target, failed, handled)
    return _canary(md, status, observed, previous, target, now, check, actions, failed, handled)


def _immediate(
    md: ModelDeployment,
    observed: dict[int, ObservedDeployment],
    previous: int | None,
    target: int,
    failed: list[int],
    handled: Actions,
) -> Plan:
    # A new version under an HPA starts at the size the serving version has now.
    sizing = (
        observed.get(previous) if previous is not None and target not in observed else observed.get(target)
    )
    stable_apply, size_now = _stable_size(md, sizing)
    target_plan = _sized(target, stable_apply, size_now, TRACK_STABLE)
    target_dep = observed.get(target)

    def plan_for(serving: int | None, delete: list[int]) -> Plan:
        return Plan(serving, target, [target_plan], delete, failed_versions=failed, handled=handled)

    others = sorted(v for v in observed if v != target)
    if previous is None or previous == target:
        # Serving means a pod passed the model gate, not that the Deployment is Available.
        up = target_dep is not None and (target_dep.serving_replicas > 0 or target_dep.complete)
        return plan_for(target if up or previous == target else None, others)
    if target_dep is not None and target_dep.complete:
        return plan_for(target, others)
    # The previous version keeps serving, untouched, until the target completes.
    return plan_for(previous, sorted(v for v in observed if v not in (target, previous)))


def _canary(
    md: ModelDeployment,
    status: ModelDeploymentStatus,
    observed: dict[int, ObservedDeployment],
    stable: int,
    target: int,
    now: str,
    check: CheckResult | None,
    actions: Actions,
    failed: list[int],
    handled: Actions,
) -> Plan:
    rollout = md.spec.rollout
    steps = steps_of(md)
    moment = parse_time(now)
    canary = status.canary if status.canary is not None and status.canary.version == target else None
    if canary is None:
        # A new canary; a new version during a canary replaces the old canary.
        canary = CanaryStatus(version=target, started_at=now, last_progress_at=now)
    stale = sorted(v for v in observed if v not in (stable, target))
    stable_apply, stable_size = _stable_size(md, observed.get(stable))
    canary_dep = observed.get(target)
    canary_ready = canary_dep.serving_replicas if canary_dep is not None else 0

    def ended(result: str, reason: str) -> Plan:
        history_failed = failed if result == "Promoted" else sorted({*failed, target})
        return Plan(
            stable,
            target,
            [_sized(stable, stable_apply, stable_size, TRACK_STABLE)],
            sorted({*stale, target}),
            canary=None,
            outcome=Outcome(target, result, reason),
            failed_versions=history_failed,
            handled=handled,
        )

    if actions.abort is not None and actions.abort != handled.abort:
        handled = replace(handled, abort=actions.abort)
        return ended("Aborted", f"aborted by the abort annotation at step {canary.step}")
    promote_now = actions.promote is not None and actions.promote != handled.promote
    if promote_now:
        handled = replace(handled, promote=actions.promote)
        canary = _with(
            canary, step=len(steps), step_started_at=None, last_progress_at=now, manual_promotion=True
        )

    # Progress deadline: no step started or finished for too long.
    last_progress = parse_time(canary.last_progress_at or now)
    if rollout.paused:
        canary = _with(canary, paused=True)
    elif canary.paused:
        canary = _with(canary, paused=False, last_progress_at=now)  # a pause is not a stall
        last_progress = moment
    elif (moment - last_progress).total_seconds() > rollout.progress_deadline_seconds:
        last = canary.analysis.last_check
        detail = f"; last check: {last.message}" if last is not None and last.message else ""
        return ended(
            "RolledBack",
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
                [_sized(target, stable_apply, stable_size, TRACK_STABLE)],
                sorted(v for v in observed if v != target),
                canary=None,
                outcome=Outcome(
                    target,
                    "Promoted",
                    "promoted by the promote annotation"
                    if canary.manual_promotion
                    else f"passed {len(steps)} step(s) of analysis",
                ),
                failed_versions=failed,
                handled=handled,
            )
        canary = _with(
            canary,
            weight=100 if rollout.shrink_stable else 50,
            replicas=canary_count,
            ready_replicas=canary_ready,
        )
        return Plan(
            stable,
            target,
            [
                _sized(stable, stable_apply, stable_size, TRACK_STABLE),
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
    stable_plan = _sized(
        stable, stable_count if rollout.shrink_stable else stable_apply, stable_size, TRACK_STABLE
    )
    versions = [stable_plan, VersionPlan(target, canary_count, TRACK_CANARY)]
    canary = _with(canary, weight=step.weight, replicas=canary_count, ready_replicas=canary_ready)
    requeue: float | None = WAIT_REQUEUE_SECONDS

    step_serving = canary_ready >= canary_count
    if step_serving and canary.step_started_at is None and not canary.paused:
        canary = _with(canary, step_started_at=now, last_progress_at=now)

    analysis = canary.analysis
    if check is not None and canary.step_started_at is not None and not canary.paused:
        analysis = _record(analysis, check)
        canary = _with(canary, analysis=analysis)
        limit = rollout.analysis.failure_limit if rollout.analysis else 1
        if analysis.failed >= limit:
            return ended(
                "RolledBack",
                f"analysis failed {analysis.failed} time(s) at step {canary.step}: {check.message}",
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
                analysis=_with(analysis, step_passed=0),
            )
            requeue = 0.0  # the next step's replicas at once
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


def _with(model: _M, **changes: object) -> _M:
    """A copy of a frozen status model with some fields changed."""
    return model.model_copy(update=changes)


def _record(analysis: AnalysisStatus, check: CheckResult) -> AnalysisStatus:
    if check.verdict == "Passed":
        return _with(
            analysis, passed=analysis.passed + 1, step_passed=analysis.step_passed + 1, last_check=check
        )
    if check.verdict == "Failed":
        return _with(analysis, failed=analysis.failed + 1, last_check=check)
    return _with(analysis, inconclusive=analysis.inconclusive + 1, last_check=check)


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


def history_entry(outcome: Outcome, now: str) -> HistoryEntry:
    return HistoryEntry(
        version=outcome.version, result=outcome.result, at=to_seconds(now), reason=outcome.reason
    )
