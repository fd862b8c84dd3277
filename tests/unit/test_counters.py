"""The canary analysis's counters in status: small at any number of pods, and measuring
each interval as per-pod counters would."""

from __future__ import annotations

import json

from modeldeploy.api.status import AnalysisStatus, Counters, PodCounters
from modeldeploy.probes.providers import scrape_pods
from modeldeploy.rollout.metrics import MAX_PODS_WITH_BUCKETS, totals, window_counts, with_baselines

BOUNDS = [str(10 * 2**i) for i in range(30)] + ["+Inf"]
STATUS_BOUND_BYTES = 64 * 1024


def histogram(requests: int) -> dict[str, float]:
    """Cumulative counts over every bound, none equal to the one below (nothing compacts)."""
    step = max(requests // len(BOUNDS), 1)
    return {le: float(min(requests, (i + 1) * step)) for i, le in enumerate(BOUNDS)}


def pods(count: int, requests: int, errors: int = 0) -> dict[str, PodCounters]:
    return {
        f"mnist-v3-5d8f7c9b6f-{i:05d}": PodCounters(
            requests=float(requests + i), errors=float(errors), buckets=histogram(requests + i)
        )
        for i in range(count)
    }


def status_bytes(counters: Counters) -> int:
    analysis = AnalysisStatus(passed=3, counters=counters)
    return len(json.dumps(analysis.model_dump(mode="json", by_alias=True, exclude_none=True)))


def test_the_counters_of_a_thousand_canary_pods_stay_small() -> None:
    _, counters = scrape_pods(pods(1000, 123456, errors=12), None)
    assert status_bytes(counters) < STATUS_BOUND_BYTES
    # Pre-traffic baselines of new pods join without growing a histogram each.
    joined = with_baselines(counters, pods(1010, 7))
    assert len(joined.pod_counts) == 1010
    assert status_bytes(joined) < STATUS_BOUND_BYTES


def test_summed_counters_measure_an_interval_as_per_pod_counters_do() -> None:
    count = MAX_PODS_WITH_BUCKETS + 8
    before, after = pods(count, 1000), pods(count, 1500, errors=3)
    kept_each = Counters(pods=before)  # what status held before it was bounded
    kept_summed = totals(before)
    assert kept_summed.pods == {}
    assert kept_summed.pod_counts
    assert window_counts(after, kept_summed) == window_counts(after, kept_each)


def test_a_restarted_pod_hides_no_errors_when_counters_are_summed() -> None:
    count = MAX_PODS_WITH_BUCKETS + 8
    before = pods(count, 1000)
    after = pods(count, 1100)
    restarted = next(iter(after))
    after[restarted] = PodCounters(requests=0, errors=500, buckets=histogram(500))
    window = window_counts(after, totals(before))
    assert window.errors == 500
    assert window.requests == (count - 1) * 100 + 0
    assert all(count >= 0 for count in window.buckets.values())
    assert list(window.buckets.values()) == sorted(window.buckets.values())  # still cumulative
