"""TF Serving's Prometheus metrics: parsing an exposition, counting what happened between
two scrapes pod by pod, and Prometheus's histogram quantile. Pure.

A sample of our metrics that is not a finite, non-negative number makes the scrape
unreadable (MetricsFormatError): such a check is inconclusive, never a pass.
"""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

from ..api.status import Counters, PodCounters

# Pods whose latency histograms the counters keep one by one; beyond, each pod keeps its
# request and error counts only (two numbers) and the histograms are kept summed: a
# histogram per pod made a thousand-pod canary's status most of a megabyte.
MAX_PODS_WITH_BUCKETS = 32
REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY_BUCKET = ":tensorflow:serving:request_latency_bucket"


class MetricsFormatError(ValueError):
    """A scrape that cannot be trusted; str() says why in one line."""


def _bound(le: str) -> float:
    return math.inf if le == "+Inf" else float(le)


def parse_exposition(text: str, model: str) -> PodCounters:
    """Cumulative request, error and latency-bucket counts of ``model`` in one scrape, read by
    prometheus_client's own parser (escapes, comments, exponent and special values as
    Prometheus reads them). An exposition it refuses is a scrape that cannot be trusted."""
    requests = errors = 0.0
    buckets: dict[str, float] = {}
    try:
        # The parser names a counter's samples <family>_total, whether or not the exposition
        # did (TF Serving's request_count is typed counter and has no suffix): family names.
        samples = [
            (family.name if family.type == "counter" else s.name, s.labels, s.value)
            for family in text_string_to_metric_families(text)
            for s in family.samples
        ]
    except (ValueError, IndexError, KeyError) as exc:  # what the parser raises on a broken line
        raise MetricsFormatError(f"the metrics cannot be parsed: {str(exc)[:80]}") from None
    for name, labels, value in samples:
        if name not in (REQUEST_COUNT, REQUEST_LATENCY_BUCKET) or labels.get("model_name") != model:
            continue
        if not math.isfinite(value) or value < 0:
            raise MetricsFormatError(f"{name} has a sample that is not a finite count: {value!r}")
        if name == REQUEST_COUNT:
            requests += value
            if labels.get("status") != "OK":
                errors += value
        elif "le" in labels:
            try:
                _bound(labels["le"])
            except ValueError:
                raise MetricsFormatError(f"{name} has a bucket bound that is not a number") from None
            buckets[labels["le"]] = buckets.get(labels["le"], 0.0) + value
    return PodCounters(requests=requests, errors=errors, buckets=compact(buckets))


def compact(buckets: dict[str, float]) -> dict[str, float]:
    """Cumulative buckets without the bounds whose count equals the bound below: status stays small."""
    kept: dict[str, float] = {}
    below = -1.0
    for le, count in sorted(buckets.items(), key=lambda item: _bound(item[0])):
        if count != below or le == "+Inf":
            kept[le] = count
        below = count
    return kept


def expand(buckets: dict[str, float], bounds: list[str]) -> dict[str, float]:
    """``compact`` undone at ``bounds``: each bound has the count of the nearest kept bound at or below."""
    kept = sorted(((_bound(le), count) for le, count in buckets.items()))
    out: dict[str, float] = {}
    for le in sorted(bounds, key=_bound):
        value = 0.0
        for bound, count in kept:
            if bound <= _bound(le):
                value = count
        out[le] = value
    return out


def pod_difference(current: PodCounters, previous: PodCounters | None) -> PodCounters:
    """What one pod served since ``previous``; any counter that went down means it restarted,
    and then everything it counted is new."""
    if previous is None:
        return current
    bounds = sorted(set(current.buckets) | set(previous.buckets), key=_bound)
    now, before = expand(current.buckets, bounds), expand(previous.buckets, bounds)
    restarted = (
        current.requests < previous.requests
        or current.errors < previous.errors
        or any(now[le] < before[le] for le in bounds)
    )
    if restarted:
        return current
    return PodCounters(
        requests=current.requests - previous.requests,
        errors=current.errors - previous.errors,
        buckets={le: now[le] - before[le] for le in bounds},
    )


def window_counts(current: dict[str, PodCounters], previous: Counters | None) -> PodCounters:
    """The interval's traffic over all pods: each pod's own difference, summed."""
    before = pods_of(previous) if previous is not None else {}
    bounds = sorted({le for counters in current.values() for le in counters.buckets}, key=_bound)
    requests = errors = 0.0
    buckets = dict.fromkeys(bounds, 0.0)
    for pod, counters in current.items():
        delta = pod_difference(counters, before.get(pod))
        requests += delta.requests
        errors += delta.errors
        for le, count in expand(delta.buckets, bounds).items():
            buckets[le] += count
    if previous is not None and previous.pod_counts:
        buckets = _summed_bucket_difference(current, previous, bounds)
    return PodCounters(requests=requests, errors=errors, buckets=buckets)


def pods_of(counters: Counters) -> dict[str, PodCounters]:
    """Each pod's counters, whichever form they were kept in."""
    counted = {
        pod: PodCounters(requests=c[0], errors=c[1]) for pod, c in counters.pod_counts.items() if len(c) == 2
    }
    return {**counted, **counters.pods}


def _summed_bucket_difference(
    current: dict[str, PodCounters], previous: Counters, bounds: list[str]
) -> dict[str, float]:
    """The interval's histogram when only the sum of the pods' was kept: the sum now, less
    what the pods that went on counting had counted. Exact unless a pod restarted or left;
    then those pods' part of the kept sum is taken in proportion to their requests."""
    before = pods_of(previous)
    going_on = [
        pod for pod, now in current.items() if pod in before and pod_difference(now, before[pod]) is not now
    ]
    share = 1.0
    if len(going_on) < len(before):
        counted_before = sum(before[pod].requests for pod in going_on)
        share = counted_before / previous.requests if previous.requests else 0.0
    then = expand(previous.buckets, bounds)
    summed = _summed([counters.buckets for counters in current.values()], bounds)
    difference: dict[str, float] = {}
    floor = 0.0
    for le in bounds:  # cumulative: never below the bound before, never negative
        floor = max(floor, summed[le] - then[le] * share)
        difference[le] = floor
    return difference


def totals(pods: dict[str, PodCounters]) -> Counters:
    """The counters to keep in status: each pod's, and their sums for people reading it.
    Beyond MAX_PODS_WITH_BUCKETS pods, each pod's counts and the pods' summed histogram."""
    requests = sum(p.requests for p in pods.values())
    errors = sum(p.errors for p in pods.values())
    if len(pods) <= MAX_PODS_WITH_BUCKETS:
        return Counters(requests=requests, errors=errors, pods=dict(pods))
    return Counters(
        requests=requests,
        errors=errors,
        buckets=compact(_summed([counters.buckets for counters in pods.values()])),
        pod_counts={pod: [p.requests, p.errors] for pod, p in pods.items()},
    )


def with_baselines(counters: Counters | None, baselines: dict[str, PodCounters]) -> Counters:
    """``counters`` with the counts of pods they do not hold yet (pre-traffic baselines)."""
    if counters is None or not counters.pod_counts:
        return totals({**baselines, **(counters.pods if counters is not None else {})})
    added = {pod: c for pod, c in baselines.items() if pod not in counters.pod_counts}
    summed = _summed([counters.buckets, *(c.buckets for c in added.values())])
    return Counters(
        requests=counters.requests + sum(c.requests for c in added.values()),
        errors=counters.errors + sum(c.errors for c in added.values()),
        buckets=compact(summed),
        pod_counts={**counters.pod_counts, **{pod: [c.requests, c.errors] for pod, c in added.items()}},
    )


def _summed(histograms: list[dict[str, float]], bounds: list[str] | None = None) -> dict[str, float]:
    """Compacted cumulative histograms added up at ``bounds`` (else at all their bounds)."""
    if bounds is None:
        bounds = sorted({le for histogram in histograms for le in histogram}, key=_bound)
    summed = dict.fromkeys(bounds, 0.0)
    for histogram in histograms:
        for le, count in expand(histogram, bounds).items():
            summed[le] += count
    return summed


def quantile(q: float, buckets: dict[str, float]) -> float | None:
    """Prometheus's histogram_quantile over cumulative buckets (upper bounds as keys), except
    that a quantile in the +Inf bucket is infinite: it lies above every finite bound."""
    bounds = sorted((_bound(le), count) for le, count in buckets.items())
    if not bounds or bounds[-1][1] <= 0:
        return None
    rank = q * bounds[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in bounds:
        if count >= rank:
            if math.isinf(bound):
                return math.inf
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound
