"""The status conditions' types and reasons, and the Events' reasons: the strings clients match on."""

from __future__ import annotations

from enum import StrEnum


class ConditionType(StrEnum):
    READY = "Ready"
    AVAILABLE = "Available"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    MODEL_LOADED = "ModelLoaded"
    CANARY_HEALTHY = "CanaryHealthy"
    RECONCILING = "Reconciling"  # kstatus: the operator still moves towards the spec
    STALLED = "Stalled"  # kstatus: it cannot get there without a person
    STATUS_RECOVERED = "StatusRecovered"


class Reason(StrEnum):
    """A condition's reason. A rollback's own code (``SignatureChanged``, ...) and a
    rollout's result (``RolledBack``, ``Aborted``) serve as reasons too."""

    # Available
    MINIMUM_REPLICAS_READY = "MinimumReplicasReady"
    SCALED_TO_ZERO = "ScaledToZero"
    NO_READY_REPLICAS = "NoReadyReplicas"
    # Degraded, and Progressing, Ready, Reconciling and Stalled while degraded
    AS_EXPECTED = "AsExpected"
    INVALID_SPEC = "InvalidSpec"
    APPLY_REJECTED = "ApplyRejected"
    CHILD_OWNED_BY_ANOTHER = "ChildOwnedByAnother"
    PRE_TRAFFIC_BLOCKED = "PreTrafficBlocked"
    MODEL_FETCH_FAILED = "ModelFetchFailed"
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    # Progressing, Ready, Reconciling, Stalled
    WAITING_FOR_TRAFFIC = "WaitingForTraffic"
    WAITING_FOR_PROMOTE = "WaitingForPromote"
    WAITING_FOR_COMPARISON = "WaitingForComparison"
    WAITING_FOR_WEBHOOK = "WaitingForWebhook"
    WEBHOOK_REFUSED = "WebhookRefused"  # also a rollback's reason
    WEBHOOK_NOT_ALLOWED = "WebhookNotAllowed"  # also a rollback's reason
    PAUSED = "Paused"
    CANARY_PROGRESSING = "CanaryProgressing"
    CANARY_IN_PROGRESS = "CanaryInProgress"
    ROLLOUT_COMPLETE = "RolloutComplete"
    ROLLING_OUT = "RollingOut"
    # ModelLoaded
    FETCH_FAILED = "FetchFailed"
    VERSION_AVAILABLE = "VersionAvailable"
    LOADING = "Loading"
    # CanaryHealthy
    ANALYSIS_FAILED = "AnalysisFailed"
    ANALYSIS_PASSING = "AnalysisPassing"
    INCONCLUSIVE = "Inconclusive"
    NO_CHECKS_YET = "NoChecksYet"
    NO_CANARY = "NoCanary"
    PROMETHEUS_NOT_ALLOWED = "PrometheusNotAllowed"  # no check sent: the address is not the admin's
    # StatusRecovered
    REBUILT_FROM_CHILDREN = "RebuiltFromChildren"


class EventReason(StrEnum):
    """An Event's reason, beside a rollback's own (taken from the Degraded condition or history)."""

    READY = "Ready"
    STATUS_RECOVERED = "StatusRecovered"
    CANARY_STARTED = "CanaryStarted"
    CANARY_STEP = "CanaryStep"
    ARTIFACT_CHANGED = "ArtifactChanged"
    VERSION_ROLLED = "VersionRolled"
    SHARD_TAKEN_OVER = "ShardTakenOver"


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"
