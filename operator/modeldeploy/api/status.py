"""Pydantic models of the ModelDeployment status: what the operator reports.

Written only by the operator; the CRD schema is generated from these classes too.
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from pydantic import ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from .base import CamelModel
from .custom_metric import MAX_METRICS
from .times import parse_optional_time, parse_time
from .webhook_gates import WebhookStatus

_Counts = TypeVar("_Counts", float, dict[str, float])


class Phase(StrEnum):
    PENDING = "Pending"
    PROGRESSING = "Progressing"
    READY = "Ready"
    DEGRADED = "Degraded"
    FAILED = "Failed"


class Verdict(StrEnum):
    """An analysis check's outcome: too little traffic is Inconclusive, never Passed."""

    PASSED = "Passed"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"


class RolloutResult(StrEnum):
    """How a rollout of a version ended."""

    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    ABORTED = "Aborted"


class Condition(CamelModel):
    """metav1.Condition-shaped."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)
    type: str
    """The aspect: Ready, Available, Progressing, Degraded, ModelLoaded, CanaryHealthy,
    Reconciling, Stalled, StatusRecovered."""
    status: str = Field(pattern=r"^(True|False|Unknown)$")
    """True, False or Unknown."""
    reason: str
    """A CamelCase code for the state."""
    message: str = ""
    """What it means, for a person."""
    last_transition_time: str | None = None
    """When status last changed."""
    observed_generation: int | None = None
    """The metadata.generation this condition describes."""


class VersionStatus(CamelModel):
    """The serving (stable) version and its pods."""

    version: int
    """The model version."""
    replicas: int = 0
    """Its pods."""
    ready_replicas: int = 0
    """Its pods serving the model (model gate open)."""
    digest: str | None = Field(
        default=None, description="sha256 of the fetched artifact, as the fetcher reported it."
    )


class MetricResult(CamelModel):
    """One custom metric at one check: the canary's value, the stable's (maxDropVsStable),
    and its verdict."""

    name: str = Field(max_length=63)
    """The metric's name in the spec."""
    value: float | None = None
    """The canary's value; absent when the query answered none (or NaN, an infinity)."""
    stable_value: float | None = None
    """The stable's value for maxDropVsStable."""
    result: Verdict
    """Passed, Failed or Inconclusive (no data, or no answer)."""

    @field_validator("value", "stable_value")
    @classmethod
    def _measured(cls, value: float | None) -> float | None:
        return value if value is None or math.isfinite(value) else None


class RelativeCheck(CamelModel):
    """The canary against the stable over the same window: both versions' figures and the
    statistical test's result."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)
    result: Verdict
    """Passed, Failed, or Inconclusive while the samples are too small to decide at the
    confidence asked."""
    canary_success_rate: float | None = None
    """The canary's share of OK answers in the window."""
    stable_success_rate: float | None = None
    """The stable's share of OK answers in the same window."""
    p_value: float | None = None
    """The success-rate test's p-value: of "the canary is worse than allowed" when Failed or
    Inconclusive, of "the canary is within the allowance" when Passed."""
    canary_latency_p99_ms: float | None = Field(default=None, alias="canaryLatencyP99Ms")
    """The canary's p99 latency in the window (Prometheus's estimate, for reading)."""
    stable_latency_p99_ms: float | None = Field(default=None, alias="stableLatencyP99Ms")
    """The stable's p99 latency in the same window (Prometheus's estimate, for reading)."""
    latency_p_value: float | None = None
    """The latency test's p-value, read as pValue is."""

    @field_validator(
        "canary_success_rate",
        "stable_success_rate",
        "p_value",
        "canary_latency_p99_ms",
        "stable_latency_p99_ms",
        "latency_p_value",
    )
    @classmethod
    def _measured(cls, value: float | None) -> float | None:
        return value if value is None or math.isfinite(value) else None


class CheckResult(CamelModel):
    """The outcome of one analysis check."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)
    at: str
    """When the check ran (the API server's time)."""
    verdict: Verdict
    """Passed, Failed or Inconclusive (too little traffic)."""
    requests: float | None = None
    """Requests the check saw."""
    success_rate: float | None = None
    """Share of OK answers."""
    latency_p99_ms: float | None = Field(default=None, alias="latencyP99Ms")
    """99th percentile latency in milliseconds."""
    message: str = ""
    """The verdict's reason."""
    metrics: list[MetricResult] | None = Field(default=None, max_length=MAX_METRICS)
    """Each custom metric's value and verdict (analysis.metrics)."""
    relative: RelativeCheck | None = None
    """The comparison with the stable (analysis.relative), when one is asked."""
    reason: str | None = Field(default=None, max_length=64)
    """Why no check could be sent (`PrometheusNotAllowed`): the CanaryHealthy reason then."""

    @field_validator("requests", "success_rate", "latency_p99_ms")
    @classmethod
    def _measured(cls, value: float | None) -> float | None:
        # Not measured rather than NaN or an infinity: the status must stay valid JSON.
        return value if value is None or math.isfinite(value) else None

    @property
    def checked_at(self) -> datetime:
        return parse_time(self.at)


def _finite_counts(value: _Counts) -> _Counts:
    """Refuses NaN and infinities in kept counters: never written, so status stays valid JSON."""
    numbers = value.values() if isinstance(value, dict) else (value,)
    if not all(math.isfinite(n) for n in numbers):
        raise ValueError(f"counts must be finite: {value}")
    return value


class PodCounters(CamelModel):
    """One pod's cumulative request, error and latency-bucket counts at the last check."""

    requests: float = 0
    """Requests the pod had answered."""
    errors: float = 0
    """Non-OK answers among them."""
    buckets: dict[str, float] = Field(
        default_factory=dict,
        description="Cumulative count per bucket bound; a bound whose count equals the bound below it is "
        "left out.",
    )

    @field_validator("requests", "errors", "buckets")
    @classmethod
    def _finite(cls, value: _Counts) -> _Counts:
        return _finite_counts(value)


class Counters(CamelModel):
    """Cumulative canary metrics at the last check; the next check measures the difference,
    pod by pod, so one restarted pod cannot hide its errors in the sum."""

    requests: float = 0
    """Requests counted so far."""
    errors: float = 0
    """Non-OK answers counted so far."""
    buckets: dict[str, float] = Field(default_factory=dict)
    """Cumulative latency histogram counts per bucket bound (microseconds), compacted: summed
    over the pods when there are too many to keep each one's (see podCounts)."""
    pods: dict[str, PodCounters] = Field(default_factory=dict)
    """The same per pod, so a restarted pod cannot hide its errors."""
    pod_counts: dict[str, list[float]] = Field(
        default_factory=dict,
        description="[requests, errors] per pod, instead of pods when the canary has too many pods to "
        "keep a histogram each: status stays small, the pods' buckets are summed in buckets.",
    )

    @field_validator("requests", "errors", "buckets")
    @classmethod
    def _finite(cls, value: _Counts) -> _Counts:
        return _finite_counts(value)


class AnalysisStatus(CamelModel):
    """The canary's analysis checks so far."""

    passed: int = 0
    """Checks passed."""
    failed: int = 0
    """Checks failed."""
    inconclusive: int = 0
    """Checks with too little traffic to judge."""
    step_passed: int = Field(default=0, description="Passed checks in the current step.")
    last_check: CheckResult | None = None
    """The latest check."""
    counters: Counters | None = None
    """Counters the next check is measured from."""
    stable_counters: Counters | None = None
    """The stable's counters the next relative check is measured from (pods scrape)."""
    webhooks: list[WebhookStatus] = Field(default_factory=list)
    """The latest answer of each webhook gate asked in this canary."""


class SignatureResult(StrEnum):
    COMPATIBLE = "Compatible"
    INCOMPATIBLE = "Incompatible"
    SKIPPED = "Skipped"  # nothing to compare with: the first version, or signature Ignore


class SignatureCheck(CamelModel):
    """The new version's signatures against the serving version's."""

    result: SignatureResult
    """Compatible, Incompatible or Skipped."""
    diffs: list[str] = Field(default_factory=list)
    """What differs between the signatures."""


class GoldenCheck(CamelModel):
    """The golden requests' outcome on the new pod."""

    requests: int = 0
    """Golden requests sent."""
    passed: int = 0
    """Golden requests answered as expected."""
    agreement: float | None = None
    """Share of requests that agreed (compareTo Stable)."""
    first_mismatch: str = ""
    """The first request that did not match: index, line, output, expected and got."""
    compared_with: int | None = None
    """The serving version the answers were compared with (compareTo Stable); none for a first
    version, which has nothing to compare with."""


class PreTrafficStatus(CamelModel):
    """The pre-traffic checks of the canary's pods (the latest pod's, or the first failure)."""

    signature: SignatureCheck | None = None
    """The signature check."""
    golden: GoldenCheck | None = None
    """The golden requests' outcome."""
    warmed_up: bool = False
    """The warm-up requests were sent."""
    warmup_skipped: str | None = None
    """Why no warm-up requests were sent (a model whose inputs are too large for synthetic
    requests); the other checks still ran."""
    waiting_for: str | None = None
    """What the checks wait for before they can run (a serving pod to compare with): the
    pods' gates stay shut meanwhile."""


class CanaryStatus(CamelModel):
    """The canary in progress: its version, weight, step, pods and analysis."""

    version: int
    """The canary's model version."""
    weight: int = 0
    """Percent of traffic the canary is configured for."""
    traffic_share: float | None = None
    """The share of traffic the canary really gets (0 to 1): its serving pods over all serving
    pods for the Service router (two stable pods and one canary pod: 0.33 whatever the weight),
    the route's weight for GatewayAPI."""
    step: int = 0
    """The current step, 0-based; equal to the number of steps while promoting."""
    replicas: int = 0
    """The canary's pods."""
    ready_replicas: int = 0
    """The canary's pods serving the model."""
    analysis: AnalysisStatus = Field(default_factory=AnalysisStatus)
    """The analysis checks so far."""
    started_at: str | None = None
    """When the canary started."""
    step_started_at: str | None = Field(
        default=None, description="When the current step's canary pods were all serving."
    )
    last_progress_at: str | None = None
    """When the canary last made progress (the deadline counts from it)."""
    paused: bool = False
    """Held at its step (spec.rollout.paused)."""
    waiting_for_traffic: bool = False
    """Held at its step past the progress deadline because its checks stay Inconclusive
    (analysis.onInconclusive Pause): it goes on when traffic arrives, or on promote or abort."""
    manual_promotion: bool = False
    """Promoted by the promote annotation."""
    waiting_for_promote: bool | None = None
    """Held at a Manual step until a person promotes it."""
    pre_traffic: PreTrafficStatus | None = None
    """The canary pods' pre-traffic checks."""
    steps_hash: str | None = Field(
        default=None, description="Hash of rollout.steps the step index counts in; other steps restart it."
    )

    @property
    def started(self) -> datetime | None:
        return parse_optional_time(self.started_at)

    @property
    def step_started(self) -> datetime | None:
        return parse_optional_time(self.step_started_at)

    @property
    def last_progress(self) -> datetime | None:
        return parse_optional_time(self.last_progress_at)


class ActionValues(CamelModel):
    """Values of the one-shot annotations (in status: those already acted on; a new value acts)."""

    promote: str | None = None
    """The promote annotation's value acted on."""
    abort: str | None = None
    """The abort annotation's value acted on."""
    retry: str | None = None
    """The retry annotation's value acted on."""


class Endpoints(CamelModel):
    """Where clients reach the model through the resource's Service."""

    rest: str
    """TF Serving's REST API of the model."""
    grpc: str
    """TF Serving's gRPC API (host:port)."""


class HistoryEntry(CamelModel):
    """One version change: promoted, rolled back or aborted."""

    version: int
    """The version rolled out or back."""
    result: RolloutResult
    """Promoted, RolledBack or Aborted."""
    at: str
    """When."""
    reason: str = ""
    """Why."""
    replaced: int | None = None
    """For Promoted: the stable version it replaced (what ``kubectl modeldeploy undo`` goes back to)."""


class ModelDeploymentStatus(CamelModel):
    """What the operator observed and decided; written by the operator only."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)
    observed_generation: int | None = None
    """The metadata.generation this status describes."""
    phase: Phase | None = None
    """Pending, Progressing, Ready, Degraded or Failed."""
    ready: str | None = Field(default=None, description="readyReplicas/replicas of the stable version.")
    conditions: list[Condition] = Field(default_factory=list)
    """The resource's conditions (kstatus' Reconciling and Stalled among them)."""
    stable: VersionStatus | None = None
    """The version serving."""
    canary: CanaryStatus | None = None
    """The canary in progress, if any."""
    endpoints: Endpoints | None = None
    """Where clients reach the model."""
    history: list[HistoryEntry] = Field(default_factory=list)
    """Version changes, newest last (20 kept)."""
    failed_versions: list[int] = Field(default_factory=list)
    """Versions rolled back; not rolled out again until the spec or the retry annotation says so."""
    handled_actions: ActionValues | None = None
    """The one-shot annotation values already acted on."""
    replicas: int | None = None
    """The serving version's pods: what the scale subresource reports as its replica count
    (``kubectl scale``, a HorizontalPodAutoscaler targeting this resource)."""
    selector: str | None = None
    """Label selector of the serving version's pods, as the scale subresource reports it: the pods
    a HorizontalPodAutoscaler targeting this resource averages its metrics over."""
    shard: int | None = Field(default=None, ge=0)
    """With several operator replicas sharing the work (MODELDEPLOY_SHARDS above 1): the shard
    this resource belongs to, a stable hash of its namespace and name."""
    shard_holder: str | None = None
    """With several operator replicas: the replica that held the shard when it last wrote this
    status. A replica writes it on its first pass after taking the shard over."""
