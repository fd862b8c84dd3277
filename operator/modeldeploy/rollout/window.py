"""The traffic of one analysis interval, as the probes read it and the verdicts judge it."""

from __future__ import annotations

from dataclasses import dataclass

# Longest message a check carries into status.
MESSAGE_LIMIT = 200


@dataclass(frozen=True)
class Window:
    """Traffic of one analysis interval."""

    requests: float
    errors: float
    p99_ms: float | None
