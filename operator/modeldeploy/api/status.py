"""Pydantic models of the ModelDeployment status: what the operator reports.

Written only by the operator; the CRD schema is generated from these classes too.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_camel

from .base import CamelModel


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
    status: str = Field(pattern=r"^(True|False|Unknown)$")
    reason: str
    message: str = ""
    last_transition_time: str | None = None
    observed_generation: int | None = None


class VersionStatus(CamelModel):
    version: int
    replicas: int = 0
    ready_replicas: int = 0
    digest: str | None = Field(
        default=None, description="sha256 of the fetched artifact, as the fetcher reported it."
    )


class CheckResult(CamelModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)
    at: str
    verdict: Verdict
    requests: float | None = None
    success_rate: float | None = None
    latency_p99_ms: float | None = Field(default=None, alias="latencyP99Ms")
    message: str = ""


class PodCounters(CamelModel):
    """One pod's cumulative request, error and latency-bucket counts at the last check."""

    requests: float = 0
    errors: float = 0
    buckets: dict[str, float] = Field(
        default_factory=dict,
        description="Cumulative count per bucket bound; a bound whose count equals the bound below it is "
        "left out.",
    )


class Counters(CamelModel):
    """Cumulative canary metrics at the last check; the next check measures the difference,
    pod by pod, so one restarted pod cannot hide its errors in the sum."""

    requests: float = 0
    errors: float = 0
    buckets: dict[str, float] = Field(default_factory=dict)
    pods: dict[str, PodCounters] = Field(default_factory=dict)


class AnalysisStatus(CamelModel):
    passed: int = 0
    failed: int = 0
    inconclusive: int = 0
    step_passed: int = Field(default=0, description="Passed checks in the current step.")
    last_check: CheckResult | None = None
    counters: Counters | None = None


class SignatureResult(StrEnum):
    COMPATIBLE = "Compatible"
    INCOMPATIBLE = "Incompatible"
    SKIPPED = "Skipped"  # nothing to compare with: the first version, or signature Ignore


class SignatureCheck(CamelModel):
    result: SignatureResult
    diffs: list[str] = Field(default_factory=list)


class GoldenCheck(CamelModel):
    requests: int = 0
    passed: int = 0
    agreement: float | None = None
    first_mismatch: str = ""


class PreTrafficStatus(CamelModel):
    """The pre-traffic checks of the canary's pods (the latest pod's, or the first failure)."""

    signature: SignatureCheck | None = None
    golden: GoldenCheck | None = None
    warmed_up: bool = False


class CanaryStatus(CamelModel):
    version: int
    weight: int = 0
    step: int = 0
    replicas: int = 0
    ready_replicas: int = 0
    analysis: AnalysisStatus = Field(default_factory=AnalysisStatus)
    started_at: str | None = None
    step_started_at: str | None = Field(
        default=None, description="When the current step's canary pods were all serving."
    )
    last_progress_at: str | None = None
    paused: bool = False
    manual_promotion: bool = False
    pre_traffic: PreTrafficStatus | None = None
    steps_hash: str | None = Field(
        default=None, description="Hash of rollout.steps the step index counts in; other steps restart it."
    )


class ActionValues(CamelModel):
    """Values of the one-shot annotations (in status: those already acted on; a new value acts)."""

    promote: str | None = None
    abort: str | None = None
    retry: str | None = None


class Endpoints(CamelModel):
    rest: str
    grpc: str


class HistoryEntry(CamelModel):
    version: int
    result: RolloutResult
    at: str
    reason: str = ""


class ModelDeploymentStatus(CamelModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)
    observed_generation: int | None = None
    phase: Phase | None = None
    ready: str | None = Field(default=None, description="readyReplicas/replicas of the stable version.")
    conditions: list[Condition] = Field(default_factory=list)
    stable: VersionStatus | None = None
    canary: CanaryStatus | None = None
    endpoints: Endpoints | None = None
    history: list[HistoryEntry] = Field(default_factory=list)
    failed_versions: list[int] = Field(default_factory=list)
    handled_actions: ActionValues | None = None
