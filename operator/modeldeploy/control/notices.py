"""Rollout notifications: which moments are worth telling a person about, what the cluster admin
configured to hear them (webhooks with an event and namespace filter), and the CloudEvents 1.0
JSON body each one posts. Pure: delivery is notice_delivery.py's.

Webhooks are the admin's (a file the operator reads at start, from a ConfigMap or Secret):
tenants cannot make the operator post to a URL of their choosing, so there is none in the spec.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from ..api.base import CamelModel
from ..api.names import GROUP, PLURAL, VERSION
from ..api.status import ModelDeploymentStatus, RolloutResult

CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
EVENT_TYPE_PREFIX = "dev.modeldeploy.rollout."


class NotificationEvent(StrEnum):
    CANARY_STARTED = "CanaryStarted"
    STEP_PASSED = "StepPassed"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    ABORTED = "Aborted"
    PAUSED = "Paused"


class NotificationFormat(StrEnum):
    """The body a webhook receives: see notice_formats.py."""

    CLOUD_EVENTS = "CloudEvents"
    SLACK = "Slack"
    TEAMS = "Teams"


class Webhook(CamelModel):
    """One receiver of notifications."""

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    """Names it in logs and in the modeldeploy_notifications_total metric."""
    url: str = Field(pattern=r"^https?://[^/?#\s]+(/[^\s]*)?$", max_length=2048)
    """Where each event is POSTed."""
    format: NotificationFormat = NotificationFormat.CLOUD_EVENTS
    """The body: CloudEvents (structured mode JSON), Slack (incoming webhook) or Teams (MessageCard)."""
    signing_secret: str = Field(default="", max_length=4096)
    """When set, each POST carries X-Modeldeploy-Signature: sha256=<HMAC-SHA256 of the body>."""
    events: list[NotificationEvent] = Field(default_factory=lambda: list(NotificationEvent))
    """The events it hears; every one when absent."""
    namespaces: list[str] = Field(default_factory=list)
    """The namespaces whose resources it hears; every one when empty."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Headers sent with each POST (Authorization, say: keep the file in a Secret then)."""
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    """The most one POST may take, reply included."""
    max_attempts: int = Field(default=3, ge=1, le=10)
    """Tries per event: a refused connection, a timeout, 408, 429 or 5xx is tried again."""

    def wants(self, event: NotificationEvent, namespace: str) -> bool:
        return event in self.events and (not self.namespaces or namespace in self.namespaces)


class NotificationsConfig(CamelModel):
    """The file MODELDEPLOY_NOTIFICATIONS_CONFIG names."""

    webhooks: list[Webhook] = Field(default_factory=list)
    """The receivers."""
    queue_size: int = Field(default=256, ge=1, le=100000)
    """Events waiting per webhook; beyond it new ones are dropped (and counted), never waited for."""


class NotificationsConfigError(ValueError):
    """The admin's file cannot be read or is not a valid configuration."""


def load_config(path: str | Path) -> NotificationsConfig:
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
        config = NotificationsConfig.model_validate(raw)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise NotificationsConfigError(f"notifications config {path}: {exc}") from None
    names = [w.name for w in config.webhooks]
    if len(set(names)) != len(names):
        raise NotificationsConfigError(f"notifications config {path}: webhook names repeat: {names}")
    return config


@dataclass(frozen=True)
class Notice:
    """A moment worth telling: the event, a sentence, and the facts a receiver needs."""

    event: NotificationEvent
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def _check(status: ModelDeploymentStatus | None) -> dict[str, Any] | None:
    """The canary's last analysis check, if it had one: the failing check of a rollback."""
    if status is None or status.canary is None or status.canary.analysis.last_check is None:
        return None
    check: dict[str, Any] = status.canary.analysis.last_check.model_dump(
        by_alias=True, exclude_none=True, mode="json"
    )
    return check


def notices(previous: ModelDeploymentStatus, current: ModelDeploymentStatus) -> list[Notice]:
    """What changed between two statuses that a person should hear about; none for a steady one."""
    found: list[Notice] = []
    old, new = previous.canary, current.canary
    if new is not None and (old is None or old.version != new.version):
        found.append(
            Notice(
                NotificationEvent.CANARY_STARTED,
                f"canary of version {new.version} started",
                {"canaryVersion": new.version, "step": new.step + 1, "weight": new.weight},
            )
        )
    elif new is not None and old is not None and new.step > old.step:
        found.append(
            Notice(
                NotificationEvent.STEP_PASSED,
                f"canary of version {new.version} passed step {old.step + 1} at {old.weight}%; "
                f"now at step {new.step + 1}, {new.weight}%",
                {
                    "canaryVersion": new.version,
                    "step": old.step + 1,
                    "weight": old.weight,
                    "nextStep": new.step + 1,
                    "nextWeight": new.weight,
                    "check": _check(current),
                },
            )
        )
    if new is not None and (new.paused or new.waiting_for_traffic):
        was = old is not None and old.version == new.version and (old.paused or old.waiting_for_traffic)
        if not was:
            why = "spec.rollout.paused" if new.paused else "too little traffic to judge (WaitingForTraffic)"
            found.append(
                Notice(
                    NotificationEvent.PAUSED,
                    f"canary of version {new.version} paused at step {new.step + 1}: {why}",
                    {"canaryVersion": new.version, "step": new.step + 1, "weight": new.weight, "reason": why},
                )
            )
    if current.history and (not previous.history or current.history[-1] != previous.history[-1]):
        entry = current.history[-1]
        event = {
            RolloutResult.PROMOTED: NotificationEvent.PROMOTED,
            RolloutResult.ROLLED_BACK: NotificationEvent.ROLLED_BACK,
            RolloutResult.ABORTED: NotificationEvent.ABORTED,
        }[entry.result]
        details: dict[str, Any] = {"version": entry.version, "reason": entry.reason}
        if entry.result is RolloutResult.PROMOTED:
            details["replaced"] = entry.replaced
        else:
            # The canary is gone from the new status: its last check is in the old one.
            details["check"] = _check(previous)
        found.append(Notice(event, f"version {entry.version} {entry.result.value}: {entry.reason}", details))
    return found


def cloud_event(notice: Notice, body: dict[str, Any], status: ModelDeploymentStatus, now: str) -> bytes:
    """The CloudEvents 1.0 structured-mode JSON body of one notice about one resource."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    data = {
        "namespace": namespace,
        "name": name,
        "uid": meta.get("uid"),
        "generation": meta.get("generation"),
        "event": notice.event.value,
        "message": notice.message,
        "requestedVersion": ((body.get("spec") or {}).get("model") or {}).get("version"),
        "stableVersion": status.stable.version if status.stable else None,
        "phase": status.phase.value if status.phase else None,
        **notice.details,
    }
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}",
        "type": EVENT_TYPE_PREFIX + notice.event.value,
        "subject": f"{namespace}/{name}",
        "time": now,
        "datacontenttype": "application/json",
        "data": data,
    }
    return json.dumps(event, separators=(",", ":")).encode()
