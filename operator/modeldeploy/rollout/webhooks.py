"""Webhook gates, the decisions: at one point of a canary, which gates passed, which to ask
(again), and whether a refusal rolls back or holds. Pure: the calls are the control layer's.

A gate's latest answer is kept in status.canary.analysis.webhooks, so a pass after a restart
knows what passed. A refused Hold gate is asked again every analysis interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..api.conditions import Reason
from ..api.spec import ModelDeployment, Strategy
from ..api.status import ModelDeploymentStatus
from ..api.times import parse_time
from ..api.webhook_gates import GatePoint, GateResult, OnFailure, WebhookGate, WebhookStatus
from .types import reason_code

MAX_MESSAGE_CHARS = 200


@dataclass(frozen=True)
class WebhookCall:
    """A gate the control layer is to ask, and the JSON body to POST it."""

    version: int
    name: str
    url: str
    timeout_seconds: float
    at: GatePoint
    step: int
    body: dict[str, Any]


@dataclass(frozen=True)
class WebhookAnswer:
    """What one finished call brought: a yes, or a no with the line a person reads."""

    version: int
    name: str
    at: GatePoint
    step: int
    allowed: bool
    detail: str
    answered_at: str


@dataclass(frozen=True)
class GateWait:
    """Why the canary holds at a gate: a condition's reason and message."""

    reason: str
    message: str


@dataclass(frozen=True)
class GateOutcome:
    """One gate point, judged: open, or held (with the calls to make), or a rollback."""

    open: bool
    records: list[WebhookStatus]
    calls: list[WebhookCall] = field(default_factory=list)
    rollback: str | None = None
    wait: GateWait | None = None
    retry_in: float | None = None  # a refused Hold gate: seconds until it is asked again


@dataclass(frozen=True)
class GatePlace:
    """Where in the canary the gate stands: the point, the step it comes before, and what the
    body tells the gate."""

    at: GatePoint
    step: int
    stable: int
    version: int
    weight: int
    steps: int


def sanitised(text: str) -> str:
    """One printable line, cut short: an answer's text goes into status and a terminal."""
    line = "".join(c if c.isprintable() else " " for c in text)
    return line.strip()[:MAX_MESSAGE_CHARS]


def where(at: GatePoint, step: int) -> str:
    if at is GatePoint.STEP:
        return f"before step {step + 1}"
    return "before any traffic" if at is GatePoint.PRE_TRAFFIC else "before promotion"


def request_body(md: ModelDeployment, gate: WebhookGate, place: GatePlace) -> dict[str, Any]:
    """The JSON POSTed to a gate: the resource, both versions, the point and the step."""
    return {
        "apiVersion": "serving.modeldeploy.dev/v1alpha1",
        "kind": "ModelDeployment",
        "namespace": md.namespace,
        "name": md.name,
        "uid": md.uid,
        "model": md.model_name,
        "stableVersion": place.stable,
        "canaryVersion": place.version,
        "webhook": gate.name,
        "at": str(place.at),
        "step": place.step,
        "steps": place.steps,
        "weight": place.weight,
    }


def judge(
    md: ModelDeployment,
    place: GatePlace,
    records: list[WebhookStatus],
    answers: tuple[WebhookAnswer, ...],
    now: datetime,
) -> GateOutcome:
    """The gates at ``place``: open once every one answered 2xx there."""
    analysis = md.spec.rollout.analysis
    gates = [g for g in analysis.webhooks if g.at is place.at] if analysis is not None else []
    kept = _recorded(records, answers, place, {g.name for g in (analysis.webhooks if analysis else [])})
    if not gates:
        return GateOutcome(True, kept)
    latest = {r.name: r for r in kept if r.at is place.at and r.step == place.step}
    interval = analysis.interval_time.total_seconds() if analysis is not None else 30.0
    calls: list[WebhookCall] = []
    pending: list[str] = []
    refused: list[WebhookStatus] = []
    retry_in: float | None = None
    for gate in gates:
        record = latest.get(gate.name)
        if record is not None and record.result is GateResult.PASSED:
            continue
        if record is not None and gate.on_failure is OnFailure.ROLLBACK:
            return GateOutcome(False, kept, rollback=_refusal(record, place))
        if record is None:
            pending.append(gate.name)
            calls.append(_call(md, gate, place))
            continue
        refused.append(record)
        waited = (now - parse_time(record.checked_at)).total_seconds()
        if waited >= interval:
            calls.append(_call(md, gate, place))
        else:
            left = interval - waited
            retry_in = left if retry_in is None else min(retry_in, left)
    if not pending and not refused:
        return GateOutcome(True, kept)
    return GateOutcome(False, kept, calls, wait=_wait(place, pending, refused), retry_in=retry_in)


def _recorded(
    records: list[WebhookStatus], answers: tuple[WebhookAnswer, ...], place: GatePlace, names: set[str]
) -> list[WebhookStatus]:
    """Status's records with this pass's answers at ``place`` in, one per gate still in the spec."""
    latest = {r.name: r for r in records if r.name in names}
    for answer in answers:
        here = (answer.version, answer.at, answer.step) == (place.version, place.at, place.step)
        if here and answer.name in names:
            latest[answer.name] = WebhookStatus(
                name=answer.name,
                at=answer.at,
                step=answer.step,
                result=GateResult.PASSED if answer.allowed else GateResult.FAILED,
                checked_at=answer.answered_at,
                message="" if answer.allowed else sanitised(answer.detail),
            )
    return sorted(latest.values(), key=lambda r: r.name)


def _call(md: ModelDeployment, gate: WebhookGate, place: GatePlace) -> WebhookCall:
    body = request_body(md, gate, place)
    return WebhookCall(place.version, gate.name, gate.url, gate.timeout_seconds, place.at, place.step, body)


def _code_and_text(record: WebhookStatus) -> tuple[str, str]:
    """The refusal's reason code (WebhookNotAllowed for a URL never called) and its text."""
    code = reason_code(record.message)
    if code is None:
        return Reason.WEBHOOK_REFUSED, record.message
    return code, record.message[len(code) + 2 :]


def _refusal(record: WebhookStatus, place: GatePlace) -> str:
    code, text = _code_and_text(record)
    return (
        f"{code}: webhook {record.name} refused version {place.version} {where(place.at, place.step)}: {text}"
    )


def _wait(place: GatePlace, pending: list[str], refused: list[WebhookStatus]) -> GateWait:
    """The condition of a canary held at a gate: the refusals first, they need a person."""
    if refused:
        code = _code_and_text(refused[0])[0]
        said = "; ".join(f"{r.name}: {_code_and_text(r)[1]}" for r in refused)
        message = (
            f"held {where(place.at, place.step)}: webhook(s) refused ({said}); asked again every "
            "analysis interval (onFailure Hold), or promote or abort it"
        )
        return GateWait(code, message)
    names = ", ".join(pending)
    return GateWait(
        Reason.WAITING_FOR_WEBHOOK, f"waiting {where(place.at, place.step)} for webhook(s) {names}"
    )


def traffic_allowed(md: ModelDeployment, status: ModelDeploymentStatus, pod_version: int) -> bool:
    """Whether a pod of ``pod_version`` may take traffic as far as the PreTraffic gates go:
    any pod but a canary's; a canary's once they all passed, or once its first step started
    (a gate added to the spec later asks nothing)."""
    analysis = md.spec.rollout.analysis
    gates = [g.name for g in analysis.webhooks if g.at is GatePoint.PRE_TRAFFIC] if analysis else []
    target = md.spec.model.version
    stable = status.stable.version if status.stable is not None else None
    canary_path = md.spec.rollout.strategy is Strategy.CANARY and stable not in (None, target)
    if not gates or pod_version != target or not canary_path or target in status.failed_versions:
        return True
    canary = status.canary
    if canary is None or canary.version != target:
        return False
    if canary.step > 0 or canary.step_started_at is not None:
        return True
    passed = {
        r.name
        for r in canary.analysis.webhooks
        if r.at is GatePoint.PRE_TRAFFIC and r.result is GateResult.PASSED
    }
    return all(name in passed for name in gates)
