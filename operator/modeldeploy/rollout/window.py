"""The traffic of one analysis interval, as the probes read it and the verdicts judge it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# Longest message a check carries into status.
MESSAGE_LIMIT = 200


@dataclass(frozen=True)
class Window:
    """Traffic of one analysis interval."""

    requests: float
    errors: float
    p99_ms: float | None
    # The interval's cumulative latency histogram (bucket bound in microseconds -> requests at
    # or below it), for the relative latency test; empty when the source gave none.
    buckets: Mapping[str, float] = field(default_factory=dict)
