"""Asking one webhook gate whether a rollout may go on: a POST to a URL the admin allows,
bounded in time and bytes, whose answer is a yes (2xx) or a no with the reply's first line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from . import bounded_http
from .providers import url_admitted

WEBHOOK_NOT_ALLOWED = "WebhookNotAllowed"
MAX_REPLY_BYTES = 16 * 1024
MAX_DETAIL_CHARS = 200


@dataclass(frozen=True)
class GateAnswer:
    """The gate's yes or no, and for a no the line a person reads in status."""

    allowed: bool
    detail: str = ""


def webhook_refusal(url: str, allowed: Sequence[str]) -> str | None:
    """Why ``url`` must not be called (no base URL the admin allows admits it), or None.
    Checked before any request: the operator's pod reaches what a tenant cannot."""
    if url_admitted(url, allowed):
        return None
    return (
        f"{WEBHOOK_NOT_ALLOWED}: {url[:MAX_DETAIL_CHARS]} is not among the webhook URLs the "
        "operator may call; no request was sent"
    )


def first_line(reply: bytes) -> str:
    """The reply's first non-empty line, cut short: what a refusal says in status."""
    for line in reply.decode("utf-8", "replace").splitlines():
        if line.strip():
            return line.strip()[:MAX_DETAIL_CHARS]
    return ""


def ask(url: str, payload: bytes, timeout: float) -> GateAnswer:
    """POST ``payload`` (JSON) to the gate; a 2xx within ``timeout`` seconds is a yes."""
    headers = {"Content-Type": "application/json"}
    try:
        status, reply = bounded_http.request("POST", url, timeout, MAX_REPLY_BYTES, payload, headers)
    except bounded_http.FetchError as exc:
        return GateAnswer(False, str(exc)[:MAX_DETAIL_CHARS])
    if 200 <= status < 300:
        return GateAnswer(True)
    said = first_line(reply)
    return GateAnswer(False, f"HTTP {status}: {said}" if said else f"HTTP {status}")
