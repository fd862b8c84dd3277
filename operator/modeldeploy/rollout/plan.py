"""Which model versions run, at what size, and which one serves: the plan of one pass. Pure.

(spec, previous status, observed Deployments, now, analysis check, one-shot
actions) -> a Plan. Nothing here talks to the API server or reads a clock, so
every transition is unit-tested.

Strategy Immediate (and the first rollout of any strategy): the target version's
Deployment runs beside the serving one, which is removed only once the target
serves with every replica. Strategy Canary: see ``canary``.
"""

from __future__ import annotations

from dataclasses import replace

from ..api.names import TRACK_STABLE
from ..api.spec import ModelDeployment, Strategy
from ..api.status import ActionValues, ModelDeploymentStatus, RolloutResult
from .canary import FAILED_VERSIONS_LIMIT, advance_canary
from .child_state import ObservedDeployment
from .sizing import sized, stable_replicas
from .types import Check, Outcome, Plan, PreTrafficVerdict


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


def plan(
    md: ModelDeployment,
    status: ModelDeploymentStatus,
    observed: dict[int, ObservedDeployment],
    now: str,
    check: Check | None = None,
    actions: ActionValues | None = None,
    pre_traffic: PreTrafficVerdict | None = None,
) -> Plan:
    actions = actions or ActionValues()
    target = md.spec.model.version
    failed = list(status.failed_versions)
    handled = status.handled_actions or ActionValues()
    if actions.retry is not None and actions.retry != handled.retry:
        handled = handled.model_copy(update={"retry": actions.retry})
        failed = [v for v in failed if v != target]
    previous = _previous_serving(status, observed, target)
    pre_failure = pre_traffic.failure if pre_traffic is not None and pre_traffic.version == target else None
    # The serving version's own new pods that fail stay shut (a condition says why); the
    # version serves on with the pods it has, and is not rolled back from itself.
    if pre_failure is not None and target not in failed and previous != target:
        return _failed_pre_traffic(md, observed, previous, target, pre_failure, failed, handled)
    canary_path = md.spec.rollout.strategy is Strategy.CANARY and previous not in (None, target)
    if not canary_path or target in failed:
        # No canary runs: a promote or abort written now is consumed, never saved up for
        # the next canary (which would then skip its steps, or die at once).
        handled = handled.model_copy(
            update={"promote": actions.promote or handled.promote, "abort": actions.abort or handled.abort}
        )
    if previous is not None and previous != target and target in failed:
        # Rolled back before: a re-sync of the same spec must not roll it again.
        why = f"version {target} was rolled back; set a new version or the retry annotation"
        return _previous_only(md, observed, previous, target, failed, handled, held_back=why)
    if not canary_path or previous is None:
        # A first version that failed its pre-traffic checks keeps its pods, gated shut.
        held = (
            f"version {target} failed its pre-traffic checks"
            if previous is None and target in failed
            else None
        )
        return _immediate(
            md,
            observed,
            previous,
            target,
            Plan(None, target, failed_versions=failed, handled=handled, held_back=held),
        )
    return advance_canary(
        md, status, observed, previous, target, now, check, actions, failed, handled, pre_traffic
    )


def _failed_pre_traffic(
    md: ModelDeployment,
    observed: dict[int, ObservedDeployment],
    previous: int | None,
    target: int,
    failure: tuple[str, str],
    failed: list[int],
    handled: ActionValues,
) -> Plan:
    """The target failed a check before any user saw it: it is rolled back (a canary) or
    never switched to (Immediate), and kept in failedVersions like any rollback."""
    code, message = failure
    outcome = Outcome(target, RolloutResult.ROLLED_BACK, f"{code}: {message}")
    failed = sorted({*failed, target})[-FAILED_VERSIONS_LIMIT:]
    if previous is None:
        # Nothing else to serve: its pods stay, gated shut; status says why.
        base = Plan(None, target, failed_versions=failed, handled=handled, outcome=outcome)
        return _immediate(md, observed, previous, target, base)
    return _previous_only(md, observed, previous, target, failed, handled, outcome=outcome)


def _previous_only(
    md: ModelDeployment,
    observed: dict[int, ObservedDeployment],
    previous: int,
    target: int,
    failed: list[int],
    handled: ActionValues,
    held_back: str | None = None,
    outcome: Outcome | None = None,
) -> Plan:
    """The version that served before keeps serving at its size; every other version goes."""
    stable_apply, size_now = stable_replicas(md, observed.get(previous))
    return Plan(
        previous,
        target,
        [sized(previous, stable_apply, size_now, TRACK_STABLE)],
        sorted(v for v in observed if v != previous),
        outcome=outcome,
        failed_versions=failed,
        handled=handled,
        held_back=held_back,
    )


def _immediate(
    md: ModelDeployment,
    observed: dict[int, ObservedDeployment],
    previous: int | None,
    target: int,
    base: Plan,
) -> Plan:
    # A new version under an HPA starts at the size the serving version has now.
    sizing = (
        observed.get(previous) if previous is not None and target not in observed else observed.get(target)
    )
    stable_apply, size_now = stable_replicas(md, sizing)
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
