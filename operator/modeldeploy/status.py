"""Observed children -> the resource's status: conditions, phase, versions, events.

Pure: the caller passes ``now``. A condition keeps its lastTransitionTime while
its status does not change, so a pass that observes nothing new yields a status
equal to the previous one and the reconciler writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import builders
from .models import (
    Condition,
    HistoryEntry,
    ModelDeployment,
    ModelDeploymentStatus,
    Phase,
    VersionStatus,
)
from .observed import FetchFailure, ObservedDeployment
from .rollout import Plan

HISTORY_LIMIT = 20


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


def _condition(
    previous: ModelDeploymentStatus,
    type_: str,
    status: bool,
    reason: str,
    message: str,
    generation: int,
    now: str,
) -> Condition:
    text = "True" if status else "False"
    old = next((c for c in previous.conditions if c.type == type_), None)
    since = old.last_transition_time if old is not None and old.status == text else now
    return Condition(
        type=type_,
        status=text,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )


def derive_status(
    md: ModelDeployment,
    plan: Plan,
    observed: dict[int, ObservedDeployment],
    previous: ModelDeploymentStatus,
    now: str,
    fetch_failure: FetchFailure | None = None,
    spec_problem: str | None = None,
    digests: dict[int, str] | None = None,
) -> ModelDeploymentStatus:
    target = observed.get(plan.target_version)
    serving = observed.get(plan.serving_version) if plan.serving_version is not None else None
    desired = md.spec.desired_replicas if md.spec.autoscaling is None else None

    def cond(type_: str, ok: bool, reason: str, message: str) -> Condition:
        return _condition(previous, type_, ok, reason, message, md.generation, now)

    # Available: some version answers requests.
    if serving is not None and serving.ready_replicas > 0:
        available = cond(
            "Available",
            True,
            "MinimumReplicasReady",
            f"version {serving.version}: {serving.ready_replicas} pod(s) ready",
        )
    elif serving is not None and serving.spec_replicas == 0:
        available = cond("Available", False, "ScaledToZero", "replicas is 0: nothing serves")
    else:
        available = cond("Available", False, "NoReadyReplicas", "no version has a ready pod yet")

    # Progressing / Degraded: the target version's own rollout.
    degraded_reason, degraded_message = "", ""
    if spec_problem is not None:
        degraded_reason, degraded_message = "InvalidSpec", spec_problem
    elif fetch_failure is not None:
        degraded_reason = "ModelFetchFailed"
        degraded_message = (
            f"version {plan.target_version}: model fetch failed in pod {fetch_failure.pod}: "
            f"{fetch_failure.message}"
        )
    elif target is not None and target.deadline_exceeded:
        progressing_cond = target.conditions["Progressing"]
        degraded_reason = "ProgressDeadlineExceeded"
        degraded_message = (
            f"version {plan.target_version} did not become ready within "
            f"{md.spec.rollout.progress_deadline_seconds}s: {progressing_cond.message}"
        )
    degraded = cond(
        "Degraded",
        bool(degraded_reason),
        degraded_reason or "AsExpected",
        degraded_message or "no problem observed",
    )

    rolled_out = plan.serving_version == plan.target_version and target is not None and target.complete
    if degraded_reason:
        progressing = cond("Progressing", False, degraded_reason, degraded_message)
    elif rolled_out:
        progressing = cond(
            "Progressing", False, "RolloutComplete", f"version {plan.target_version} is rolled out"
        )
    else:
        progressing = cond(
            "Progressing",
            True,
            "RollingOut",
            f"rolling out version {plan.target_version}"
            + (f" while version {plan.serving_version} serves" if plan.rolling and serving else ""),
        )

    model_loaded = (
        cond("ModelLoaded", False, "FetchFailed", degraded_message)
        if fetch_failure is not None
        else cond(
            "ModelLoaded",
            target is not None and target.ready_replicas > 0,
            "VersionAvailable" if target is not None and target.ready_replicas > 0 else "Loading",
            f"version {plan.target_version}: "
            + (f"{target.ready_replicas} pod(s) report it available" if target else "no pod yet"),
        )
    )

    ready_ok = rolled_out and not degraded_reason
    ready = cond(
        "Ready",
        ready_ok,
        "RolloutComplete" if ready_ok else (degraded_reason or "RollingOut"),
        f"version {plan.target_version} serves" if ready_ok else progressing.message,
    )

    if ready_ok:
        phase = Phase.READY
    elif degraded_reason:
        # A bad spec is the user's to fix (Degraded); a version that failed with
        # nothing else serving leaves the model unavailable (Failed).
        serving_ok = available.status == "True" or spec_problem is not None
        phase = Phase.DEGRADED if serving_ok else Phase.FAILED
    elif available.status == "True":
        phase = Phase.PROGRESSING
    else:
        phase = Phase.PENDING

    stable = None
    if serving is not None:
        digest = (digests or {}).get(serving.version)
        if digest is None and previous.stable is not None and previous.stable.version == serving.version:
            digest = previous.stable.digest  # pods that report no digest do not erase a known one
        stable = VersionStatus(
            version=serving.version,
            replicas=serving.replicas,
            ready_replicas=serving.ready_replicas,
            digest=digest,
        )
    wanted = desired if desired is not None else (serving.spec_replicas if serving else 0)
    history = list(previous.history)
    if previous.stable is not None and stable is not None and previous.stable.version != stable.version:
        history.append(
            HistoryEntry(
                version=stable.version,
                result="Promoted",
                at=now,
                reason=f"{md.spec.rollout.strategy.value}: replaced version {previous.stable.version}",
            )
        )
    return ModelDeploymentStatus(
        observed_generation=md.generation,
        phase=phase,
        ready=f"{stable.ready_replicas if stable else 0}/{wanted}",
        conditions=[ready, available, progressing, degraded, model_loaded],
        stable=stable,
        canary=previous.canary,
        endpoints=builders.endpoints(md),
        history=history[-HISTORY_LIMIT:],
        failed_versions=list(previous.failed_versions),
    )


def transition_events(previous: ModelDeploymentStatus, current: ModelDeploymentStatus) -> list[Event]:
    """Events for meaningful changes only, so a steady resource emits none."""
    events: list[Event] = []
    if previous.phase != current.phase:
        if current.phase is Phase.READY:
            version = current.stable.version if current.stable else "?"
            events.append(Event("Normal", "Ready", f"version {version} is ready"))
        elif current.phase in (Phase.DEGRADED, Phase.FAILED):
            degraded = next((c for c in current.conditions if c.type == "Degraded"), None)
            message = degraded.message if degraded else str(current.phase.value)
            reason = degraded.reason if degraded else str(current.phase.value)
            events.append(Event("Warning", reason, message))
    if (
        previous.stable is not None
        and current.stable is not None
        and previous.stable.version == current.stable.version
        and previous.stable.digest
        and current.stable.digest
        and previous.stable.digest != current.stable.digest
    ):
        events.append(
            Event(
                "Warning",
                "ArtifactChanged",
                f"version {current.stable.version} now serves artifact {current.stable.digest} "
                f"(was {previous.stable.digest}): the files behind this version number changed",
            )
        )
    if (
        previous.stable is not None
        and current.stable is not None
        and previous.stable.version != current.stable.version
    ):
        events.append(
            Event(
                "Normal",
                "VersionRolled",
                f"now serving version {current.stable.version} (was {previous.stable.version})",
            )
        )
    return events
