"""Observed children and the rollout plan -> the resource's status, and the events it warrants.

Pure: the caller passes ``now``. A condition keeps its lastTransitionTime while
its status does not change, so a pass that observes nothing new yields a status
equal to the previous one and the reconciler writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..api.spec import ModelDeployment, Router
from ..api.status import (
    ActionValues,
    CanaryStatus,
    Condition,
    HistoryEntry,
    ModelDeploymentStatus,
    Phase,
    RolloutResult,
    Verdict,
    VersionStatus,
)
from ..api.times import to_seconds
from ..children.routing import endpoints
from ..rollout.child_state import FetchFailure, ObservedDeployment
from ..rollout.scale import scale_status
from ..rollout.types import Plan, reason_code

HISTORY_LIMIT = 20
_NO_ACTIONS = ActionValues()


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


def condition(
    previous: ModelDeploymentStatus,
    type_: str,
    status: bool,
    reason: str,
    message: str,
    generation: int,
    now: str,
) -> Condition:
    """A metav1.Condition whose lastTransitionTime moves only when its status does."""
    text = "True" if status else "False"
    old = next((c for c in previous.conditions if c.type == type_), None)
    since = old.last_transition_time if old is not None and old.status == text else to_seconds(now)
    return Condition(
        type=type_,
        status=text,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )


def _canary_summary(canary: CanaryStatus, steps: int) -> str:
    a = canary.analysis
    step = f"promoting (after {steps} step(s))" if canary.step >= steps else f"step {canary.step + 1}/{steps}"
    return (
        f"canary version {canary.version}: {step} at {canary.weight}% weight, "
        f"{canary.ready_replicas}/{canary.replicas} canary pod(s) serving; analysis {a.passed} passed, "
        f"{a.failed} failed, {a.inconclusive} inconclusive" + (" (paused)" if canary.paused else "")
    )


def _rollback_reason(plan: Plan, history: list[HistoryEntry]) -> tuple[str, str] | None:
    """(reason, message) when the requested version was rolled back or aborted and is held back."""
    if plan.outcome is not None and plan.outcome.result is not RolloutResult.PROMOTED:
        return (
            reason_code(plan.outcome.reason) or plan.outcome.result,
            f"version {plan.outcome.version} {plan.outcome.result.lower()}: {plan.outcome.reason}",
        )
    if plan.held_back is not None:
        last = next((h for h in reversed(history) if h.version == plan.target_version), None)
        detail = f" ({last.reason})" if last is not None else ""
        code = (reason_code(last.reason) or last.result) if last is not None else RolloutResult.ROLLED_BACK
        return str(code), plan.held_back + detail
    return None


def derive_status(
    md: ModelDeployment,
    plan: Plan,
    observed: dict[int, ObservedDeployment],
    previous: ModelDeploymentStatus,
    now: str,
    fetch_failure: FetchFailure | None = None,
    spec_problem: str | None = None,
    digests: dict[int, str] | None = None,
    rejected: str | None = None,
    recovered_lost: tuple[str, ...] | None = None,
    pre_traffic_blocked: str | None = None,
) -> ModelDeploymentStatus:
    target = observed.get(plan.target_version)
    serving = observed.get(plan.serving_version) if plan.serving_version is not None else None
    canary = plan.canary
    steps = len(md.spec.rollout.effective_steps())

    def cond(type_: str, ok: bool, reason: str, message: str) -> Condition:
        return condition(previous, type_, ok, reason, message, md.generation, now)

    history = list(previous.history)
    if plan.outcome is not None:
        entry = plan.outcome.history_entry(now)
        if entry.result is RolloutResult.PROMOTED and previous.stable is not None:
            entry = entry.model_copy(update={"replaced": previous.stable.version})
        history.append(entry)
    elif previous.stable is not None and serving is not None and previous.stable.version != serving.version:
        history.append(
            HistoryEntry(
                version=serving.version,
                result=RolloutResult.PROMOTED,
                at=to_seconds(now),
                reason=f"{md.spec.rollout.strategy.value}: replaced version {previous.stable.version}",
                replaced=previous.stable.version,
            )
        )
    rolled_back = _rollback_reason(plan, history)

    # Available: some version answers requests.
    if serving is not None and serving.serving_replicas > 0:
        available = cond(
            "Available",
            True,
            "MinimumReplicasReady",
            f"version {serving.version}: {serving.serving_replicas} pod(s) serving",
        )
    elif serving is not None and serving.spec_replicas == 0:
        available = cond("Available", False, "ScaledToZero", "replicas is 0: nothing serves")
    else:
        available = cond("Available", False, "NoReadyReplicas", "no version has a serving pod yet")

    # Degraded: what a person must fix, most specific first.
    degraded_reason, degraded_message = "", ""
    if spec_problem is not None:
        degraded_reason, degraded_message = "InvalidSpec", spec_problem
    elif rejected is not None:
        degraded_reason, degraded_message = "ApplyRejected", rejected
    elif rolled_back is not None:
        degraded_reason, degraded_message = rolled_back
    elif pre_traffic_blocked is not None:
        # The checks cannot run as configured (or the serving version's new pod failed them):
        # the pods stay shut until the user fixes it. Never a pass.
        degraded_reason, degraded_message = "PreTrafficBlocked", pre_traffic_blocked
    elif fetch_failure is not None:
        degraded_reason = "ModelFetchFailed"
        degraded_message = (
            f"version {plan.target_version}: model fetch failed in pod {fetch_failure.pod}: "
            f"{fetch_failure.message}"
        )
    elif target is not None and target.deadline_exceeded:
        degraded_reason = "ProgressDeadlineExceeded"
        degraded_message = (
            f"version {plan.target_version} did not become ready within "
            f"{md.spec.rollout.progress_deadline_seconds}s: {target.conditions['Progressing'].message}"
        )
    degraded = cond(
        "Degraded",
        bool(degraded_reason),
        degraded_reason or "AsExpected",
        degraded_message or "no problem observed",
    )

    rolled_out = (
        plan.serving_version == plan.target_version
        and target is not None
        and target.complete
        and canary is None
    )
    if degraded_reason:
        progressing = cond("Progressing", False, degraded_reason, degraded_message)
    elif canary is not None and canary.waiting_for_traffic and not canary.paused:
        progressing = cond(
            "Progressing",
            True,
            "WaitingForTraffic",
            f"held at step {canary.step + 1}: its checks stay Inconclusive past "
            f"{md.spec.rollout.progress_deadline_seconds}s (analysis.onInconclusive Pause); it goes on "
            f"when traffic arrives, or promote or abort it; {_canary_summary(canary, steps)}",
        )
    elif canary is not None:
        progressing = cond(
            "Progressing",
            True,
            "Paused" if canary.paused else "CanaryProgressing",
            _canary_summary(canary, steps),
        )
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

    if fetch_failure is not None:
        model_loaded = cond(
            "ModelLoaded", False, "FetchFailed", f"version {plan.target_version}: {fetch_failure.message}"
        )
    else:
        loaded = target is not None and target.serving_replicas > 0
        model_loaded = cond(
            "ModelLoaded",
            loaded,
            "VersionAvailable" if loaded else "Loading",
            f"version {plan.target_version}: "
            + (
                f"{target.serving_replicas} pod(s) report it AVAILABLE"
                if loaded and target
                else "no pod reports it AVAILABLE yet"
            ),
        )

    last_check = canary.analysis.last_check if canary is not None else None
    if canary is not None and last_check is not None and last_check.verdict is Verdict.FAILED:
        canary_healthy = cond("CanaryHealthy", False, "AnalysisFailed", last_check.message)
    elif canary is not None:
        reason = (
            "AnalysisPassing"
            if last_check is not None and last_check.verdict is Verdict.PASSED
            else ("Inconclusive" if last_check is not None else "NoChecksYet")
        )
        canary_healthy = cond(
            "CanaryHealthy",
            True,
            reason,
            last_check.message if last_check is not None else "waiting for the first check",
        )
    elif rolled_back is not None:
        canary_healthy = cond("CanaryHealthy", False, rolled_back[0], rolled_back[1])
    else:
        canary_healthy = cond("CanaryHealthy", True, "NoCanary", "no canary in progress")

    ready_ok = rolled_out and not degraded_reason
    not_ready_reason = degraded_reason or ("CanaryInProgress" if canary is not None else "RollingOut")
    ready = cond(
        "Ready",
        ready_ok,
        "RolloutComplete" if ready_ok else not_ready_reason,
        f"version {plan.target_version} serves" if ready_ok else progressing.message,
    )

    if ready_ok:
        phase = Phase.READY
    elif degraded_reason:
        # A bad spec or a rolled-back canary is the user's to act on (Degraded); a
        # version that failed with nothing else serving leaves the model unavailable (Failed).
        serving_ok = (
            available.status == "True"
            or spec_problem is not None
            or rejected is not None
            # A rollback leaves the version before serving; a first version has none.
            or (rolled_back is not None and plan.serving_version is not None)
        )
        phase = Phase.DEGRADED if serving_ok else Phase.FAILED
    elif available.status == "True":
        phase = Phase.PROGRESSING
    else:
        phase = Phase.PENDING

    stable = None
    if plan.serving_version is not None:
        # Kept while its Deployment is gone (deleted behind the operator's back, made again
        # by this pass): status is the only memory of which version serves, and a pass that
        # found none would take a running canary for the only version and promote it.
        version = plan.serving_version
        digest = (digests or {}).get(version)
        if digest is None and previous.stable is not None and previous.stable.version == version:
            digest = previous.stable.digest  # pods that report no digest do not erase a known one
        stable = VersionStatus(
            version=version,
            replicas=serving.replicas if serving is not None else 0,
            ready_replicas=serving.serving_replicas if serving is not None else 0,
            digest=digest,
        )
    wanted = serving.spec_replicas if serving is not None else md.spec.desired_replicas
    actions = plan.handled if plan.handled != _NO_ACTIONS else None
    # kstatus' conventions (Flux's health checks, `kubectl wait`, cli-utils): Reconciling while
    # the operator still moves towards the spec (a canary, a paused one included, a first
    # rollout), Stalled when it cannot get there without a person (what Degraded says).
    if ready_ok:
        reconciling = cond("Reconciling", False, "RolloutComplete", ready.message)
    elif degraded_reason:
        reconciling = cond("Reconciling", False, degraded_reason, "stopped: see the Stalled condition")
    else:
        reconciling = cond("Reconciling", True, progressing.reason, progressing.message)
    stalled = cond(
        "Stalled",
        bool(degraded_reason),
        degraded_reason or ("RolloutComplete" if ready_ok else progressing.reason),
        degraded_message or "no problem observed",
    )
    conditions = [ready, available, progressing, degraded, model_loaded, canary_healthy, reconciling, stalled]
    if recovered_lost is not None:
        lost = ", ".join(recovered_lost) or "nothing"
        conditions.append(
            cond(
                "StatusRecovered",
                True,
                "RebuiltFromChildren",
                f"status had lost this rollout's memory; rebuilt from the children and history; lost: {lost}",
            )
        )
    elif phase is not Phase.READY:
        kept = next((c for c in previous.conditions if c.type == "StatusRecovered"), None)
        if kept is not None:
            conditions.append(kept)  # until the resource is Ready again
    if canary is not None:
        canary = canary.model_copy(update={"traffic_share": traffic_share(md, canary, target, serving)})
    scale_replicas, scale_selector = scale_status(md, stable)  # what kubectl scale and an HPA read
    return ModelDeploymentStatus(
        observed_generation=md.generation,
        phase=phase,
        ready=f"{stable.ready_replicas if stable else 0}/{wanted}",
        conditions=conditions,
        stable=stable,
        canary=canary,
        endpoints=endpoints(md),
        history=history[-HISTORY_LIMIT:],
        failed_versions=list(plan.failed_versions),
        handled_actions=actions,
        replicas=scale_replicas,
        selector=scale_selector,
    )


def traffic_share(
    md: ModelDeployment,
    canary: CanaryStatus,
    target: ObservedDeployment | None,
    serving: ObservedDeployment | None,
) -> float:
    """What the canary really carries: a route splits by weight; a Service splits by pods, so
    the share is the canary's serving pods over all serving pods, whatever the weight says."""
    if md.spec.traffic.router is Router.GATEWAY_API:
        return round(canary.weight / 100, 2)
    ours = target.serving_replicas if target is not None else 0
    theirs = serving.serving_replicas if serving is not None else 0
    return round(ours / (ours + theirs), 2) if ours + theirs else 0.0


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
    recovered = next((c for c in current.conditions if c.type == "StatusRecovered"), None)
    if recovered is not None and not any(c.type == "StatusRecovered" for c in previous.conditions):
        events.append(Event("Warning", "StatusRecovered", recovered.message))
    old, new = previous.canary, current.canary
    if new is not None and (old is None or old.version != new.version):
        events.append(Event("Normal", "CanaryStarted", f"canary of version {new.version} started"))
    elif new is not None and old is not None and new.step != old.step:
        events.append(
            Event("Normal", "CanaryStep", f"canary of version {new.version} moved to step {new.step + 1}")
        )
    if current.history and (not previous.history or current.history[-1] != previous.history[-1]):
        entry = current.history[-1]
        if entry.result is not RolloutResult.PROMOTED and not any(e.reason == entry.result for e in events):
            # The event's reason is the rollback's own (SignatureChanged, ...) when it has one.
            events.append(
                Event(
                    "Warning",
                    reason_code(entry.reason) or entry.result,
                    f"version {entry.version}: {entry.reason}",
                )
            )
    if previous.stable is not None and current.stable is not None:
        same = previous.stable.version == current.stable.version
        if (
            same
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
        if not same:
            events.append(
                Event(
                    "Normal",
                    "VersionRolled",
                    f"now serving version {current.stable.version} (was {previous.stable.version})",
                )
            )
    return events


def invalid_spec_status(
    previous: ModelDeploymentStatus, message: str, generation: int, now: str
) -> ModelDeploymentStatus:
    """A spec the models refuse: Degraded with the message; everything else kept as it was."""
    replaced = ("Degraded", "Ready", "Reconciling", "Stalled")
    conditions = [c for c in previous.conditions if c.type not in replaced] + [
        condition(previous, "Degraded", True, "InvalidSpec", message, generation, now),
        condition(previous, "Ready", False, "InvalidSpec", message, generation, now),
        condition(
            previous,
            "Reconciling",
            False,
            "InvalidSpec",
            "stopped: see the Stalled condition",
            generation,
            now,
        ),
        condition(previous, "Stalled", True, "InvalidSpec", message, generation, now),
    ]
    return previous.model_copy(
        update={"observed_generation": generation, "phase": Phase.DEGRADED, "conditions": conditions}
    )
