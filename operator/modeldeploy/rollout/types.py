"""What a rollout decision is made of: the plan for each version, how a canary ended,
and one analysis check with the counters it measured from."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from ..api.status import (
    ActionValues,
    AnalysisStatus,
    CanaryStatus,
    CheckResult,
    Counters,
    HistoryEntry,
    PodCounters,
    PreTrafficStatus,
    RolloutResult,
)
from ..api.times import format_seconds
from .child_state import FetchFailure, ObservedDeployment

if TYPE_CHECKING:
    from .webhooks import WebhookAnswer, WebhookCall

# A rollback's reason text may open with a code ("SignatureChanged: input 'x' removed"):
# conditions and events take it as their reason.
_CODE = re.compile(r"^([A-Z][A-Za-z]+): ")


def reason_code(reason: str) -> str | None:
    match = _CODE.match(reason)
    return match.group(1) if match else None


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

    def history_entry(self, now: datetime) -> HistoryEntry:
        return HistoryEntry(
            version=self.version, result=self.result, at=format_seconds(now), reason=self.reason
        )


@dataclass(frozen=True)
class PreTrafficVerdict:
    """What the pre-traffic checks of one version's new pods found this pass."""

    version: int
    status: PreTrafficStatus | None = None  # for status.canary.preTraffic
    failure: tuple[str, str] | None = None  # (reason code, message): the version never serves
    blocked: str | None = None  # the checks cannot run as configured: gates stay shut
    # Each checked pod's counters once its checks were done: the analysis starts from them.
    baselines: dict[str, PodCounters] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    """One analysis check: its result, and the cumulative counters (the canary's, and the
    stable's for a relative check) to measure the next check from (None: the provider
    keeps none, e.g. Prometheus)."""

    result: CheckResult
    counters: Counters | None = None
    stable_counters: Counters | None = None  # the stable's, for a relative check (pods scrape)


@dataclass(frozen=True)
class CanaryState:
    """The canary as the plan decides it, times as datetimes; status shows it as CanaryStatus."""

    version: int
    started_at: datetime | None = None
    last_progress_at: datetime | None = None  # the progress deadline counts from it
    step: int = 0  # equal to the number of steps while promoting
    weight: int = 0  # the step's weight: the percent the canary is configured for
    replicas: int = 0
    ready_replicas: int = 0
    analysis: AnalysisStatus = field(default_factory=AnalysisStatus)
    step_started_at: datetime | None = None  # when the step's canary pods all served
    paused: bool = False
    waiting_for_traffic: bool = False
    manual_promotion: bool = False
    waiting_for_promote: bool = False  # held at a Manual step
    pre_traffic: PreTrafficStatus | None = None
    steps_hash: str | None = None
    # Held at a webhook gate this pass: (condition reason, message). Derived, never in status.
    webhook_wait: tuple[str, str] | None = None

    @classmethod
    def from_status(cls, status: CanaryStatus) -> CanaryState:
        return cls(
            version=status.version,
            started_at=status.started,
            last_progress_at=status.last_progress,
            step=status.step,
            weight=status.weight,
            replicas=status.replicas,
            ready_replicas=status.ready_replicas,
            analysis=status.analysis,
            step_started_at=status.step_started,
            paused=status.paused,
            waiting_for_traffic=status.waiting_for_traffic,
            manual_promotion=status.manual_promotion,
            waiting_for_promote=bool(status.waiting_for_promote),
            pre_traffic=status.pre_traffic,
            steps_hash=status.steps_hash,
        )


@dataclass(frozen=True)
class PlanInputs:
    """What a pass brings the plan besides the children: this pass's analysis check, the
    one-shot annotations' values, the pre-traffic checks' verdict, and the webhook gates'
    answers."""

    check: Check | None = None
    actions: ActionValues = field(default_factory=ActionValues)
    pre_traffic: PreTrafficVerdict | None = None
    webhook_answers: tuple[WebhookAnswer, ...] = ()  # webhook gate calls that ended since


@dataclass(frozen=True)
class Plan:
    serving_version: int | None
    target_version: int
    apply: list[VersionPlan] = field(default_factory=list)
    delete: list[int] = field(default_factory=list)
    canary: CanaryState | None = None
    # Percent of traffic the router sends the canary: the step's weight once its pods serve.
    route_weight: int = 0
    outcome: Outcome | None = None
    failed_versions: list[int] = field(default_factory=list)
    handled: ActionValues = field(default_factory=ActionValues)
    held_back: str | None = None  # why the target is not being rolled out
    requeue_after: float | None = None
    # Webhook gates to ask now (off the pass); their answers come back in a later pass.
    webhook_calls: tuple[WebhookCall, ...] = ()

    @property
    def rolling(self) -> bool:
        return self.serving_version != self.target_version

    def route_weights(self) -> dict[int, int]:
        """version -> percent of traffic a weighted router (HTTPRoute) sends it."""
        serving = self.serving_version if self.serving_version is not None else self.target_version
        if self.canary is None or self.serving_version is None:
            return {serving: 100}
        return {serving: 100 - self.route_weight, self.canary.version: self.route_weight}


@dataclass(frozen=True)
class PassFacts:
    """What one pass observed besides the plan, for the status: the children, and what the
    plan does not decide (a spec the cluster cannot run, a refused apply, a failed fetch)."""

    observed: dict[int, ObservedDeployment]
    now: datetime
    fetch_failure: FetchFailure | None = None
    spec_problem: str | None = None  # a spec the models accept yet the cluster cannot run
    digests: Mapping[int, str] = field(default_factory=dict)  # version -> artifact sha256
    rejected: str | None = None  # the API server refused the children
    rejected_reason: str | None = None  # the condition reason for ``rejected``, if not ApplyRejected
    recovered_lost: tuple[str, ...] | None = None  # status was rebuilt; what it lost
    pre_traffic_blocked: str | None = None  # the pre-traffic checks cannot run: gates stay shut
