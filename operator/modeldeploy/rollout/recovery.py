"""Rebuilding a rollout's memory when its status was lost: emptied by hand, written by
another version of the operator, or unreadable. Pure.

What the children and the history still say comes back: the stable version (from the
Deployment labelled stable, see ``plan``), the versions that were rolled back and not
promoted since, and the one-shot annotations (taken as handled, so a leftover promote
or abort never fires on the next canary). A running canary's progress cannot be
recovered: it starts its steps again.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..api.names import TRACK_CANARY, TRACK_STABLE
from ..api.status import ActionValues, ModelDeploymentStatus, RolloutResult
from .child_state import ObservedDeployment


@dataclass(frozen=True)
class Recovered:
    status: ModelDeploymentStatus
    # What status said that could not be read, and what could not be rebuilt: for the condition.
    lost: tuple[str, ...]


def needs_recovery(status: ModelDeploymentStatus, observed: dict[int, ObservedDeployment]) -> bool:
    """Status carries no memory of a rollout whose children exist."""
    return status.observed_generation is None and bool(observed)


def recover(
    status: ModelDeploymentStatus,
    unreadable: tuple[str, ...],
    observed: dict[int, ObservedDeployment],
    actions: ActionValues,
) -> Recovered:
    failed = set(status.failed_versions)
    last_result: dict[int, RolloutResult] = {}
    for entry in status.history:
        last_result[entry.version] = entry.result
    failed |= {v for v, result in last_result.items() if result is not RolloutResult.PROMOTED}
    stable = [v for v, dep in observed.items() if dep.track == TRACK_STABLE and dep.serving_replicas > 0]
    failed -= set(stable)
    handled = status.handled_actions or actions
    lost = list(unreadable)
    if any(dep.track == TRACK_CANARY for dep in observed.values()):
        lost.append("canary progress (its steps start again)")
    if not status.history:
        lost.append("history")
    rebuilt = status.model_copy(update={"failed_versions": sorted(failed), "handled_actions": handled})
    return Recovered(rebuilt, tuple(lost))
