"""TF Serving's Prometheus metrics: parsing an exposition, counting what happened between
two scrapes, and Prometheus's histogram quantile. Pure."""

from __future__ import annotations

import math
import re

from ..api.status import Counters

REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY_BUCKET = ":tensorflow:serving:request_latency_bucket"
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text: str, model: str) -> Counters:
    """Cumulative request, error and latency-bucket counts of ``model`` in one scrape."""
    requests = errors = 0.0
    buckets: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, label_text, value_text = match.groups()
        labels = dict(_LABEL.findall(label_text or ""))
        if labels.get("model_name") != model:
            continue
        value = float(value_text)
        if name == REQUEST_COUNT:
            requests += value
            if labels.get("status") != "OK":
                errors += value
        elif name == REQUEST_LATENCY_BUCKET and "le" in labels:
            buckets[labels["le"]] = buckets.get(labels["le"], 0.0) + value
    return Counters(requests=requests, errors=errors, buckets=buckets)


def difference(current: Counters, previous: Counters | None) -> Counters:
    """What happened since ``previous``; a counter that went down means pods restarted."""
    if previous is None or current.requests < previous.requests:
        return current
    return Counters(
        requests=current.requests - previous.requests,
        errors=max(current.errors - previous.errors, 0.0),
        buckets={le: max(v - previous.buckets.get(le, 0.0), 0.0) for le, v in current.buckets.items()},
    )


def quantile(q: float, buckets: dict[str, float]) -> float | None:
    """Prometheus's histogram_quantile over cumulative buckets (upper bounds as keys)."""
    bounds = sorted(((math.inf if le == "+Inf" else float(le)), count) for le, count in buckets.items())
    if not bounds or bounds[-1][1] <= 0:
        return None
    rank = q * bounds[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in bounds:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound
