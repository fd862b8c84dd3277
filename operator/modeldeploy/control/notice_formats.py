"""The bodies a notice is posted as, one per receiver kind (CloudEvents, Slack, Microsoft Teams),
and the HMAC-SHA256 signature a receiver checks them with. Pure."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from ..api.status import ModelDeploymentStatus
from .notices import CONTENT_TYPE as CLOUD_EVENTS_CONTENT_TYPE
from .notices import Notice, NotificationEvent, NotificationFormat, cloud_event

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
SIGNATURE_HEADER = "X-Modeldeploy-Signature"
# Teams' MessageCard themeColor and a Slack emoji per event, so a rollback stands out.
_COLOURS = {
    NotificationEvent.ROLLED_BACK: "D13438",
    NotificationEvent.ABORTED: "D13438",
    NotificationEvent.PAUSED: "FFB900",
    NotificationEvent.PROMOTED: "107C10",
}
_EMOJI = {
    NotificationEvent.ROLLED_BACK: ":rotating_light:",
    NotificationEvent.ABORTED: ":octagonal_sign:",
    NotificationEvent.PAUSED: ":double_vertical_bar:",
    NotificationEvent.PROMOTED: ":white_check_mark:",
}


def _subject(body: dict[str, Any]) -> str:
    meta = body["metadata"]
    return f"{meta['namespace']}/{meta['name']}"


def headline(notice: Notice, body: dict[str, Any]) -> str:
    """One line a person reads first: which resource, what happened, and the sentence."""
    return f"ModelDeployment {_subject(body)}: {notice.event.value}: {notice.message}"


def slack_message(notice: Notice, body: dict[str, Any]) -> bytes:
    """A Slack incoming-webhook body: ``text`` for notifications, a section block to read."""
    text = f"{_EMOJI.get(notice.event, ':information_source:')} {headline(notice, body)}"
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    return json.dumps({"text": text, "blocks": blocks}, separators=(",", ":")).encode()


def teams_message(notice: Notice, body: dict[str, Any], status: ModelDeploymentStatus) -> bytes:
    """A Microsoft Teams connector MessageCard: a title, the sentence and the facts."""
    facts = [
        {"name": "resource", "value": _subject(body)},
        {"name": "event", "value": notice.event.value},
        {"name": "stable version", "value": str(status.stable.version if status.stable else "-")},
    ]
    card = {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": headline(notice, body),
        "themeColor": _COLOURS.get(notice.event, "0078D7"),
        "title": f"ModelDeployment {_subject(body)}: {notice.event.value}",
        "text": notice.message,
        "sections": [{"facts": facts}],
    }
    return json.dumps(card, separators=(",", ":")).encode()


def render(
    style: NotificationFormat, notice: Notice, body: dict[str, Any], status: ModelDeploymentStatus, now: str
) -> tuple[str, bytes]:
    """The content type and the body of one notice in the receiver's format."""
    if style is NotificationFormat.SLACK:
        return JSON_CONTENT_TYPE, slack_message(notice, body)
    if style is NotificationFormat.TEAMS:
        return JSON_CONTENT_TYPE, teams_message(notice, body, status)
    return CLOUD_EVENTS_CONTENT_TYPE, cloud_event(notice, body, status, now)


def signature(secret: str, payload: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over the exact body, as GitHub's webhooks sign theirs."""
    return "sha256=" + hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
