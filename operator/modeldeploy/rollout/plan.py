"""Which model versions run, at what size, and which one serves: the plan of one pass. Pure.

(spec, previous status, observed Deployments, now, analysis check, one-shot
actions) -> a Plan. Nothing here talks to the API server or reads a clock, so
every transition is unit-tested.

Strategy Immediate (and the first rollout of any strategy): the target version's
Deployment runs beside the serving one, which is removed only once the target
serves with every replica. Strategy Canary: see ``canary``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from ..api.names import TRACK_STABLE
from ..api.spec import ModelDeployment, Strategy
from ..api.status import ActionValues, ModelDeploymentStatus, RolloutResult
from .canary import FAILED_VERSIONS_LIMIT, CanaryPass, advance_canary, opening_canary
from .child_state import ObservedDeployment
from .sizing import sized, stable_replicas
from .types import Outcome, Plan, PlanInputs


def _previous_serving(
    status: ModelDeploymentStatus, observed: dict[int, ObservedDeployment], target: int
) -> int | None:
    """The version that served before this pass: status first, even when its Deployment is
    gone (deleted behind the operator's back: it is made again, and a canary under way goes
    on; taking the next Deployment instead promoted the canary, or a rolled-back version,
    with no analysis). Else (status lost) the Deployment labelled stable that still
    serves, else any complete other Deployment.

    A stable Deployment one pod short is not complete, yet it serves: without its label
    it would be taken for an old version and removed before the new one serves.
    """
    if status.stable is not None:
        return status.stable.version
    labelled = [
        v
        for v, dep in observed.items()
        if v != target and dep.track == TRACK_STABLE and dep.serving_replicas > 0
    ]
    if labelled:
        return max(labelled)
    complete = [v for v, dep in observed.items() if v != target and dep.complete]
    return max(complete) if complete else None


@dataclass(frozen=True)
class _Rollout:
    """What every branch of the plan reads: the spec, the children, the target, and the
    rollout's memory (failed versions, one-shot annotations acted on)."""

    md: ModelDeployment
    observed: dict[int, ObservedDeployment]
    target: int
    failed: list[int]
    handled: ActionValues


def plan(
    md: ModelDeployment,
    status: ModelDeploymentStatus,
    observed: dict[int, ObservedDeployment],
    now: datetime,
    inputs: PlanInputs | None = None,
) -> Plan:
    inputs = inputs or PlanInputs()
    r = _memory(md, status, observed, inputs.actions)
    previous = _previous_serving(status, observed, r.target)
    pre_traffic = inputs.pre_traffic
    pre_failure = pre_traffic.failure if pre_traffic is not None and pre_traffic.version == r.target else None
    # The serving version's own new pods that fail stay shut (a condition says why); the
    # version serves on with the pods it has, and is not rolled back from itself.
    if pre_failure is not None and r.target not in r.failed and previous != r.target:
        return _failed_pre_traffic(r, previous, pre_failure)
    canary_path = md.spec.rollout.strategy is Strategy.CANARY and previous not in (None, r.target)
    if not canary_path or r.target in r.failed:
        # No canary runs: a promote or abort written now is consumed, never saved up for
        # the next canary (which would then skip its steps, or die at once).
        actions, handled = inputs.actions, r.handled
        update = {"promote": actions.promote or handled.promote, "abort": actions.abort or handled.abort}
        r = replace(r, handled=handled.model_copy(update=update))
    if previous is not None and previous != r.target and r.target in r.failed:
        # Rolled back before: a re-sync of the same spec must not roll it again.
        why = f"version {r.target} was rolled back; set a new version or the retry annotation"
        return _previous_only(r, previous, held_back=why)
    if not canary_path or previous is None:
        # A first version that failed its pre-traffic checks keeps its pods, gated shut.
        failed_first = previous is None and r.target in r.failed
        held = f"version {r.target} failed its pre-traffic checks" if failed_first else None
        base = Plan(None, r.target, failed_versions=r.failed, handled=r.handled, held_back=held)
        return _immediate(r, previous, base)
    canary = CanaryPass(
        md,
        observed,
        now,
        stable=previous,
        target=r.target,
        canary=opening_canary(md, status, now, pre_traffic),
        failed=r.failed,
        handled=r.handled,
        check=inputs.check,
        actions=inputs.actions,
        answers=inputs.webhook_answers,
    )
    return advance_canary(canary)


def _memory(
    md: ModelDeployment,
    status: ModelDeploymentStatus,
    observed: dict[int, ObservedDeployment],
    actions: ActionValues,
) -> _Rollout:
    """The rollout's memory from status; a new retry annotation forgets the target's failure."""
    target = md.spec.model.version
    failed = list(status.failed_versions)
    handled = status.handled_actions or ActionValues()
    if actions.retry is not None and actions.retry != handled.retry:
        handled = handled.model_copy(update={"retry": actions.retry})
        failed = [v for v in failed if v != target]
    return _Rollout(md, observed, target, failed, handled)


def _failed_pre_traffic(r: _Rollout, previous: int | None, failure: tuple[str, str]) -> Plan:
    """The target failed a check before any user saw it: it is rolled back (a canary) or
    never switched to (Immediate), and kept in failedVersions like any rollback."""
    code, message = failure
    outcome = Outcome(r.target, RolloutResult.ROLLED_BACK, f"{code}: {message}")
    r = replace(r, failed=sorted({*r.failed, r.target})[-FAILED_VERSIONS_LIMIT:])
    if previous is None:
        # Nothing else to serve: its pods stay, gated shut; status says why.
        base = Plan(None, r.target, failed_versions=r.failed, handled=r.handled, outcome=outcome)
        return _immediate(r, previous, base)
    return _previous_only(r, previous, outcome=outcome)


def _previous_only(
    r: _Rollout, previous: int, held_back: str | None = None, outcome: Outcome | None = None
) -> Plan:
    """The version that served before keeps serving at its size; every other version goes."""
    stable_apply, size_now = stable_replicas(r.md, r.observed.get(previous))
    return Plan(
        previous,
        r.target,
        [sized(previous, stable_apply, size_now, TRACK_STABLE)],
        sorted(v for v in r.observed if v != previous),
        outcome=outcome,
        failed_versions=r.failed,
        handled=r.handled,
        held_back=held_back,
    )


def _immediate(r: _Rollout, previous: int | None, base: Plan) -> Plan:
    observed, target = r.observed, r.target
    # A new version under an HPA starts at the size the serving version has now.
    sizing = (
        observed.get(previous) if previous is not None and target not in observed else observed.get(target)
    )
    stable_apply, size_now = stable_replicas(r.md, sizing)
    target_plan = sized(target, stable_apply, size_now, TRACK_STABLE)
    target_dep = observed.get(target)

    def plan_for(serving: int | None, delete: list[int]) -> Plan:
        return replace(base, serving_version=serving, apply=[target_plan], delete=delete)

    others = sorted(v for v in observed if v != target)
    if previous is None or previous == target:
        # Serving means a pod passed the model gate, not that the Deployment is Available.
        up = target_dep is not None and (target_dep.serving_replicas > 0 or target_dep.complete)
        return plan_for(target if up or previous == target else None, others)
    if target_dep is not None and target_dep.complete:
        return plan_for(target, others)
    # The previous version keeps serving, untouched, until the target completes.
    return plan_for(previous, sorted(v for v in observed if v not in (target, previous)))
