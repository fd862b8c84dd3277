"""The TF Serving stand-in's metrics are a valid Prometheus histogram (tests depend on it)."""

from __future__ import annotations

from modeldeploy.rollout.metrics import parse_exposition
from tests.standin.server import Behaviour, ModelState


def test_stand_in_histogram_is_cumulative_and_ends_at_the_total() -> None:
    state = ModelState("mnist", 1, Behaviour(latency_ms=0.0, error_rate=0.25))
    for _ in range(8):
        state.serve()
    counters = parse_exposition(state.metrics(), "mnist")
    assert (counters.requests, counters.errors) == (8, 2)
    ordered = [v for _, v in sorted((float(le), v) for le, v in counters.buckets.items())]
    assert ordered == sorted(ordered), "bucket counts must not decrease"
    assert counters.buckets["+Inf"] == 8 == max(ordered)
