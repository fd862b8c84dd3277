"""Webhook gates of a canary (spec.rollout.analysis.webhooks): HTTP checks at named points of
the rollout that must answer 2xx to go on, and their results in status."""

from __future__ import annotations

from enum import StrEnum

from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_camel

from .base import CamelModel

# http(s), a host, an optional path and query; no credentials (user@host), no fragment.
WEBHOOK_URL_PATTERN = r"^https?://[^/?#@\s]+(/[^#\s]*)?$"
WEBHOOK_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MAX_WEBHOOKS = 8


class GatePoint(StrEnum):
    """Where in a canary a webhook is asked."""

    PRE_TRAFFIC = "PreTraffic"  # before the canary's pods take any traffic
    STEP = "Step"  # before each later step's weight moves
    PRE_PROMOTION = "PrePromotion"  # before the canary grows to the stable's size and replaces it


class OnFailure(StrEnum):
    ROLLBACK = "Rollback"
    HOLD = "Hold"


class WebhookGate(CamelModel):
    """An HTTP check the canary must pass at one point: the operator POSTs a small JSON of the
    rollout to url and goes on when it answers 2xx within timeoutSeconds."""

    name: str = Field(min_length=1, max_length=63, pattern=WEBHOOK_NAME_PATTERN)
    """The gate's name (a DNS label), unique in the list; status and events name it."""
    url: str = Field(
        min_length=8,
        max_length=512,
        pattern=WEBHOOK_URL_PATTERN,
        description="Where the check is POSTed: http(s)://host[:port][/path][?query], no credentials or "
        "fragment. It must lie under a base URL the operator's admin allows (MODELDEPLOY_WEBHOOK_ALLOWED); "
        "any other is refused with reason WebhookNotAllowed and never called.",
    )
    at: GatePoint = Field(
        description="PreTraffic: before the canary's pods take any traffic. Step: before each step after "
        "the first moves its weight. PrePromotion: before the canary is promoted."
    )
    timeout_seconds: int = Field(default=30, ge=1, le=300)
    """How long the whole answer may take; past it the gate counts as refused."""
    on_failure: OnFailure = OnFailure.ROLLBACK
    """What a refusal (an answer other than 2xx, a timeout, an error) does: Rollback the canary,
    or Hold it at its point and ask again every analysis interval."""


class GateResult(StrEnum):
    PASSED = "Passed"
    FAILED = "Failed"


class WebhookStatus(CamelModel):
    """The latest answer of one webhook gate."""

    # Unknown fields tolerated, as in every status model: status a newer operator wrote.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)
    name: str
    """The gate's name."""
    at: GatePoint
    """The point it was asked at."""
    step: int = 0
    """The step it was asked before (0 at PreTraffic, the number of steps at PrePromotion)."""
    result: GateResult
    """Passed (2xx) or Failed."""
    checked_at: str
    """When the answer was read."""
    message: str = ""
    """For a refusal: the HTTP status and the answer's first line, or why no answer came."""
