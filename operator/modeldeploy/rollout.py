"""Which model versions run, at what size, and which one serves: a pure decision.

(spec, previous status, observed Deployments) -> a Plan. The reconciler applies
the plan; nothing here talks to the API server or reads a clock.

Strategy Immediate: the target version's Deployment is applied at full size
beside the version that serves now; the old version keeps serving until the new
one is complete, and only then is it removed. A version that never becomes
ready therefore never takes traffic away from a healthy one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .models import ModelDeployment, ModelDeploymentStatus
from .observed import ObservedDeployment

TRACK_STABLE = "stable"
TRACK_CANARY = "canary"


@dataclass(frozen=True)
class VersionPlan:
    version: int
    replicas: int | None  # None: an HPA owns the count
    track: str


@dataclass(frozen=True)
class Plan:
    serving_version: int | None
    target_version: int
    apply: list[VersionPlan] = field(default_factory=list)
    delete: list[int] = field(default_factory=list)

    @property
    def rolling(self) -> bool:
        return self.serving_version != self.target_version


def _previous_serving(
    status: ModelDeploymentStatus, observed: dict[int, ObservedDeployment], target: int
) -> int | None:
    """The version that served before this pass: status first, else any complete other Deployment."""
    if status.stable is not None and status.stable.version in observed:
        return status.stable.version
    complete = [v for v, dep in observed.items() if v != target and dep.complete]
    return max(complete) if complete else None


def plan(md: ModelDeployment, status: ModelDeploymentStatus, observed: dict[int, ObservedDeployment]) -> Plan:
    target = md.spec.model.version
    replicas = None if md.spec.autoscaling is not None else md.spec.desired_replicas
    previous = _previous_serving(status, observed, target)
    target_dep = observed.get(target)
    target_plan = VersionPlan(target, replicas, TRACK_STABLE)

    if previous is None or previous == target:
        # First rollout, or nothing else serves: the target is all there is.
        serving = target if target_dep is not None and (target_dep.available or target_dep.complete) else None
        if previous == target:
            serving = target
        return Plan(serving, target, [target_plan], sorted(v for v in observed if v != target))

    if target_dep is not None and target_dep.complete:
        # The new version is fully up: retire every other version.
        return Plan(target, target, [target_plan], sorted(v for v in observed if v != target))

    # Rolling: the previous version keeps serving, untouched, until the target completes.
    stale = sorted(v for v in observed if v not in (target, previous))
    return Plan(previous, target, [target_plan], stale)
