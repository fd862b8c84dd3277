"""Replica math: how many pods each version gets. Pure."""

from __future__ import annotations

from ..api.spec import ModelDeployment
from .child_state import ObservedDeployment
from .types import VersionPlan


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


def sized(version: int, replicas: int | None, size_now: int, track: str) -> VersionPlan:
    """A version's plan; under an HPA (``replicas`` None) it is handed the size it has now."""
    return VersionPlan(version, replicas, track, initial_replicas=size_now if replicas is None else None)


def stable_replicas(md: ModelDeployment, observed: ObservedDeployment | None) -> tuple[int | None, int]:
    """(replicas to apply, replicas it has): None to apply leaves the count to the HPA."""
    if md.spec.autoscaling is None:
        return md.spec.desired_replicas, md.spec.desired_replicas
    current = observed.spec_replicas if observed is not None else md.spec.autoscaling.min_replicas
    return None, max(current, md.spec.autoscaling.min_replicas)
