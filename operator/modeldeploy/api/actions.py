"""The one-shot action annotations' values: how ``promote`` says one step or all of them.

Pure, shared by the plugin (which writes values) and the operator (which reads them).
"""

from __future__ import annotations

from dataclasses import dataclass

from .names import PROMOTE_FULL_PREFIX, PROMOTE_STEP_PREFIX


@dataclass(frozen=True)
class PromoteRequest:
    """What one value of the promote annotation asks: every remaining step (``full``) or the
    current one only. ``token`` tells one request from the next: the operator acts once per
    new value of the whole annotation."""

    full: bool
    token: str


def parse_promote(value: str) -> PromoteRequest:
    """``step:<token>`` is one step; ``full:<token>`` and a bare token (the older form) are all."""
    if value.startswith(PROMOTE_STEP_PREFIX):
        return PromoteRequest(full=False, token=value.removeprefix(PROMOTE_STEP_PREFIX))
    return PromoteRequest(full=True, token=value.removeprefix(PROMOTE_FULL_PREFIX))


def format_promote(request: PromoteRequest) -> str:
    """The annotation value that ``parse_promote`` reads back as ``request``."""
    return (PROMOTE_FULL_PREFIX if request.full else PROMOTE_STEP_PREFIX) + request.token
