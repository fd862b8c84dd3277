"""What a rollout decision is made of: the plan for each version, how a canary ended,
and one analysis check with the counters it measured from."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..api.status import ActionValues, CanaryStatus, CheckResult, Counters, HistoryEntry, RolloutResult
from ..api.times import to_seconds


@dataclass(frozen=True)
class VersionPlan:
    version: int
    replicas: int | None  # None: an HPA owns the count
    track: str
    # With an HPA: the size to hand the count over at (new Deployments, promoted canaries).
    initial_replicas: int | None = None


@dataclass(frozen=True)
class Outcome:
    """A canary that ended, with the reason."""

    version: int
    result: RolloutResult
    reason: str

    def history_entry(self, now: str) -> HistoryEntry:
        return HistoryEntry(version=self.version, result=self.result, at=to_seconds(now), reason=self.reason)


@dataclass(frozen=True)
class Check:
    """One analysis check: its result, and the cumulative counters to measure the next
    check from (None: the provider keeps none, e.g. Prometheus)."""

    result: CheckResult
    counters: Counters | None = None


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
    handled: ActionValues = field(default_factory=ActionValues)
    held_back: str | None = None  # why the target is not being rolled out
    requeue_after: float | None = None

    @property
    def rolling(self) -> bool:
        return self.serving_version != self.target_version

    def route_weights(self) -> dict[int, int]:
        """version -> percent of traffic a weighted router (HTTPRoute) sends it."""
        serving = self.serving_version if self.serving_version is not None else self.target_version
        if self.canary is None or self.serving_version is None:
            return {serving: 100}
        return {serving: 100 - self.canary_weight, self.canary.version: self.canary_weight}
