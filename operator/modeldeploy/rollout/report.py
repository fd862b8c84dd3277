"""The resource's status, derived from the plan and what the pass observed, and the Events
its changes warrant. Pure: the caller passes ``now``.

A condition keeps its lastTransitionTime while its status does not change, so a pass that
observes nothing new yields a status equal to the previous one and the reconciler writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..api.conditions import ConditionType, EventReason, EventType, Reason
from ..api.names import GRPC_PORT, REST_PORT
from ..api.spec import ModelDeployment, Router
from ..api.status import (
    ActionValues,
    CanaryStatus,
    Condition,
    Endpoints,
    HistoryEntry,
    ModelDeploymentStatus,
    Phase,
    RolloutResult,
    VersionStatus,
)
from ..api.times import format_seconds, format_time
from . import conditions
from .child_state import ObservedDeployment
from .conditions import Judgement
from .scale import scale_status
from .types import CanaryState, PassFacts, Plan, reason_code

HISTORY_LIMIT = 20
_NO_ACTIONS = ActionValues()


@dataclass(frozen=True)
class Event:
    type: EventType
    reason: str
    message: str


@dataclass(frozen=True)
class Stamp:
    """What every condition of one status is stamped with: the status before (for the
    transition times), the generation described, and now."""

    previous: ModelDeploymentStatus
    generation: int
    now: datetime

    def condition(self, judgement: Judgement) -> Condition:
        """A metav1.Condition whose lastTransitionTime moves only when its status does."""
        text = "True" if judgement.ok else "False"
        old = next((c for c in self.previous.conditions if c.type == judgement.type), None)
        since = (
            old.last_transition_time if old is not None and old.status == text else format_seconds(self.now)
        )
        return Condition(
            type=judgement.type,
            status=text,
            reason=judgement.reason,
            message=judgement.message,
            last_transition_time=since,
            observed_generation=self.generation,
        )


def derive_status(
    md: ModelDeployment, plan: Plan, previous: ModelDeploymentStatus, facts: PassFacts
) -> ModelDeploymentStatus:
    history = _history(md, plan, previous, facts)
    s = conditions.situation(md, plan, facts, history)
    stamp = Stamp(previous, md.generation, facts.now)
    progressing = conditions.progressing(s)
    available = conditions.available(s)
    judgements = [
        conditions.ready(s, progressing),
        available,
        progressing,
        conditions.degraded(s),
        conditions.model_loaded(s),
        conditions.canary_healthy(s),
        conditions.reconciling(s, progressing),
        conditions.stalled(s, progressing),
    ]
    phase = conditions.phase(s, available)
    stamped = [stamp.condition(j) for j in judgements] + _recovered(stamp, facts, phase)
    stable = _stable(plan, s.serving, facts, previous)
    wanted = s.serving.spec_replicas if s.serving is not None else md.spec.desired_replicas
    canary = plan.canary
    shown = None
    if canary is not None:
        shown = canary_status(canary, traffic_share(md, canary.weight, s.target, s.serving))
    scale_replicas, scale_selector = scale_status(md, stable)  # what kubectl scale and an HPA read
    return ModelDeploymentStatus(
        observed_generation=md.generation,
        phase=phase,
        ready=f"{stable.ready_replicas if stable else 0}/{wanted}",
        conditions=stamped,
        stable=stable,
        canary=shown,
        endpoints=endpoints(md),
        history=history[-HISTORY_LIMIT:],
        failed_versions=list(plan.failed_versions),
        handled_actions=plan.handled if plan.handled != _NO_ACTIONS else None,
        replicas=scale_replicas,
        selector=scale_selector,
    )


def _history(
    md: ModelDeployment, plan: Plan, previous: ModelDeploymentStatus, facts: PassFacts
) -> list[HistoryEntry]:
    """The history with this pass's version change, if it made one."""
    history = list(previous.history)
    before = previous.stable
    if plan.outcome is not None:
        entry = plan.outcome.history_entry(facts.now)
        if entry.result is RolloutResult.PROMOTED and before is not None:
            entry = entry.model_copy(update={"replaced": before.version})
        return [*history, entry]
    serving = facts.observed.get(plan.serving_version) if plan.serving_version is not None else None
    if before is not None and serving is not None and before.version != serving.version:
        entry = HistoryEntry(
            version=serving.version,
            result=RolloutResult.PROMOTED,
            at=format_seconds(facts.now),
            reason=f"{md.spec.rollout.strategy.value}: replaced version {before.version}",
            replaced=before.version,
        )
        return [*history, entry]
    return history


def _recovered(stamp: Stamp, facts: PassFacts, phase: Phase) -> list[Condition]:
    """StatusRecovered: set when this pass rebuilt status, kept until the resource is Ready again."""
    if facts.recovered_lost is not None:
        lost = ", ".join(facts.recovered_lost) or "nothing"
        message = (
            f"status had lost this rollout's memory; rebuilt from the children and history; lost: {lost}"
        )
        judgement = Judgement(ConditionType.STATUS_RECOVERED, True, Reason.REBUILT_FROM_CHILDREN, message)
        return [stamp.condition(judgement)]
    if phase is Phase.READY:
        return []
    kept = next((c for c in stamp.previous.conditions if c.type == ConditionType.STATUS_RECOVERED), None)
    return [kept] if kept is not None else []


def _stable(
    plan: Plan, serving: ObservedDeployment | None, facts: PassFacts, previous: ModelDeploymentStatus
) -> VersionStatus | None:
    """The serving version. Kept while its Deployment is gone (deleted behind the operator's
    back, made again by this pass): status is the only memory of which version serves, and a
    pass that found none would take a running canary for the only version and promote it."""
    version = plan.serving_version
    if version is None:
        return None
    digest = facts.digests.get(version)
    if digest is None and previous.stable is not None and previous.stable.version == version:
        digest = previous.stable.digest  # pods that report no digest do not erase a known one
    return VersionStatus(
        version=version,
        replicas=serving.replicas if serving is not None else 0,
        ready_replicas=serving.serving_replicas if serving is not None else 0,
        digest=digest,
    )


def endpoints(md: ModelDeployment) -> Endpoints:
    """Where clients reach the model through the resource's Service."""
    host = f"{md.name}.{md.namespace}.svc"
    return Endpoints(rest=f"http://{host}:{REST_PORT}/v1/models/{md.model_name}", grpc=f"{host}:{GRPC_PORT}")


def canary_status(canary: CanaryState, share: float | None = None) -> CanaryStatus:
    """The canary as status shows it: its times as text with milliseconds."""
    return CanaryStatus(
        version=canary.version,
        weight=canary.weight,
        traffic_share=share,
        step=canary.step,
        replicas=canary.replicas,
        ready_replicas=canary.ready_replicas,
        analysis=canary.analysis,
        started_at=_text(canary.started_at),
        step_started_at=_text(canary.step_started_at),
        last_progress_at=_text(canary.last_progress_at),
        paused=canary.paused,
        waiting_for_traffic=canary.waiting_for_traffic,
        manual_promotion=canary.manual_promotion,
        waiting_for_promote=canary.waiting_for_promote or None,
        pre_traffic=canary.pre_traffic,
        steps_hash=canary.steps_hash,
    )


def _text(moment: datetime | None) -> str | None:
    return format_time(moment) if moment is not None else None


def traffic_share(
    md: ModelDeployment,
    weight: int,
    target: ObservedDeployment | None,
    serving: ObservedDeployment | None,
) -> float:
    """What the canary really carries: a route splits by ``weight``; a Service splits by pods,
    so the share is the canary's serving pods over all serving pods, whatever the weight says."""
    if md.spec.traffic.router is Router.GATEWAY_API:
        return round(weight / 100, 2)
    ours = target.serving_replicas if target is not None else 0
    theirs = serving.serving_replicas if serving is not None else 0
    return round(ours / (ours + theirs), 2) if ours + theirs else 0.0


def transition_events(previous: ModelDeploymentStatus, current: ModelDeploymentStatus) -> list[Event]:
    """Events for meaningful changes only, so a steady resource emits none."""
    events = _phase_events(previous, current) + _recovery_events(previous, current)
    events += _canary_events(previous, current)
    events += _rollback_events(previous, current, events)
    return events + _stable_events(previous, current) + _shard_events(previous, current)


def placed(status: ModelDeploymentStatus, shard: int | None, holder: str | None) -> ModelDeploymentStatus:
    """``status`` with the shard it belongs to and the replica writing it (both None with one
    shard: the status stays what it was before shards). A new holder changes the status, so a
    replica's first pass after taking a shard over writes once, and says so in an Event."""
    if status.shard == shard and status.shard_holder == holder:
        return status
    return status.model_copy(update={"shard": shard, "shard_holder": holder})


def _shard_events(previous: ModelDeploymentStatus, current: ModelDeploymentStatus) -> list[Event]:
    before, now = previous.shard_holder, current.shard_holder
    if not before or not now or before == now:
        return []  # a first sharded write names its holder without anyone to take over from
    message = f"replica {now} took over shard {current.shard} from replica {before}"
    return [Event(EventType.NORMAL, EventReason.SHARD_TAKEN_OVER, message)]


def _condition(status: ModelDeploymentStatus, type_: ConditionType) -> Condition | None:
    return next((c for c in status.conditions if c.type == type_), None)


def _phase_events(previous: ModelDeploymentStatus, current: ModelDeploymentStatus) -> list[Event]:
    if previous.phase == current.phase:
        return []
    if current.phase is Phase.READY:
        version = current.stable.version if current.stable else "?"
        return [Event(EventType.NORMAL, EventReason.READY, f"version {version} is ready")]
    if current.phase in (Phase.DEGRADED, Phase.FAILED):
        degraded = _condition(current, ConditionType.DEGRADED)
        message = degraded.message if degraded else str(current.phase.value)
        reason = degraded.reason if degraded else str(current.phase.value)
        return [Event(EventType.WARNING, reason, message)]
    return []


def _recovery_events(previous: ModelDeploymentStatus, current: ModelDeploymentStatus) -> list[Event]:
    recovered = _condition(current, ConditionType.STATUS_RECOVERED)
    if recovered is None or _condition(previous, ConditionType.STATUS_RECOVERED) is not None:
        return []
    return [Event(EventType.WARNING, EventReason.STATUS_RECOVERED, recovered.message)]


def _canary_events(previous: ModelDeploymentStatus, current: ModelDeploymentStatus) -> list[Event]:
    old, new = previous.canary, current.canary
    if new is None:
        return []
    if old is None or old.version != new.version:
        return [
            Event(EventType.NORMAL, EventReason.CANARY_STARTED, f"canary of version {new.version} started")
        ]
    if new.step != old.step:
        message = f"canary of version {new.version} moved to step {new.step + 1}"
        return [Event(EventType.NORMAL, EventReason.CANARY_STEP, message)]
    return []


def _rollback_events(
    previous: ModelDeploymentStatus, current: ModelDeploymentStatus, so_far: list[Event]
) -> list[Event]:
    """A rollback or abort that history gained, unless the phase's event said it already."""
    if not current.history or (previous.history and current.history[-1] == previous.history[-1]):
        return []
    entry = current.history[-1]
    if entry.result is RolloutResult.PROMOTED or any(e.reason == entry.result for e in so_far):
        return []
    # The event's reason is the rollback's own (SignatureChanged, ...) when it has one.
    reason = reason_code(entry.reason) or entry.result
    return [Event(EventType.WARNING, reason, f"version {entry.version}: {entry.reason}")]


def _stable_events(previous: ModelDeploymentStatus, current: ModelDeploymentStatus) -> list[Event]:
    before, now = previous.stable, current.stable
    if before is None or now is None:
        return []
    if before.version != now.version:
        message = f"now serving version {now.version} (was {before.version})"
        return [Event(EventType.NORMAL, EventReason.VERSION_ROLLED, message)]
    if before.digest and now.digest and before.digest != now.digest:
        message = (
            f"version {now.version} now serves artifact {now.digest} (was {before.digest}): "
            "the files behind this version number changed"
        )
        return [Event(EventType.WARNING, EventReason.ARTIFACT_CHANGED, message)]
    return []


def invalid_spec_status(
    previous: ModelDeploymentStatus, message: str, generation: int, now: datetime
) -> ModelDeploymentStatus:
    """A spec the models refuse: Degraded with the message; everything else kept as it was."""
    stamp = Stamp(previous, generation, now)
    stopped = "stopped: see the Stalled condition"
    replaced = [
        Judgement(ConditionType.DEGRADED, True, Reason.INVALID_SPEC, message),
        Judgement(ConditionType.READY, False, Reason.INVALID_SPEC, message),
        Judgement(ConditionType.RECONCILING, False, Reason.INVALID_SPEC, stopped),
        Judgement(ConditionType.STALLED, True, Reason.INVALID_SPEC, message),
    ]
    kept = [c for c in previous.conditions if c.type not in {j.type for j in replaced}]
    conditions_ = kept + [stamp.condition(j) for j in replaced]
    return previous.model_copy(
        update={"observed_generation": generation, "phase": Phase.DEGRADED, "conditions": conditions_}
    )
