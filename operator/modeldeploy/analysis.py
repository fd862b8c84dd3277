"""Canary analysis: success rate and p99 latency from TF Serving's Prometheus metrics.

Two providers behind one interface, each giving the traffic of one interval:
- ``DirectScrape`` reads ``/monitoring/prometheus/metrics`` on every canary pod
  and subtracts the cumulative counters kept in status at the previous check
  (so an operator restart loses nothing);
- ``PrometheusApi`` asks Prometheus's HTTP API for ``increase()`` over the interval.
Fewer than ``minRequests`` requests is inconclusive, never a pass.
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Protocol

from .models import Analysis, CheckResult, Counters

REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY_BUCKET = ":tensorflow:serving:request_latency_bucket"
SCRAPE_TIMEOUT_SECONDS = 2.0
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class MetricsUnavailableError(Exception):
    """Metrics could not be read; the check is inconclusive."""


@dataclass(frozen=True)
class Window:
    """Traffic of one analysis interval."""

    requests: float
    errors: float
    p99_ms: float | None


@dataclass(frozen=True)
class Target:
    namespace: str
    model: str
    version: int
    pod_ips: tuple[str, ...]
    interval_seconds: float


class Provider(Protocol):
    def window(self, target: Target, previous: Counters | None) -> tuple[Window, Counters | None]: ...


# ----- parsing and quantiles -----


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


# ----- providers -----


class DirectScrape:
    """Scrapes each canary pod's TF Serving metrics endpoint."""

    def __init__(self, port: int = 8501, path: str = "/monitoring/prometheus/metrics") -> None:
        self.port, self.path = port, path

    def window(self, target: Target, previous: Counters | None) -> tuple[Window, Counters | None]:
        total = Counters()
        for ip in target.pod_ips:
            url = f"http://{ip}:{self.port}{self.path}"
            try:
                with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_SECONDS) as response:
                    text = response.read().decode()
            except OSError as exc:
                raise MetricsUnavailableError(f"cannot scrape {ip}: {exc}") from None
            one = parse_exposition(text, target.model)
            buckets = dict(total.buckets)
            for le, value in one.buckets.items():
                buckets[le] = buckets.get(le, 0.0) + value
            total = Counters(
                requests=total.requests + one.requests, errors=total.errors + one.errors, buckets=buckets
            )
        delta = difference(total, previous)
        p99_us = quantile(0.99, delta.buckets)
        return Window(delta.requests, delta.errors, None if p99_us is None else p99_us / 1000.0), total


class PrometheusApi:
    """Reads the interval's traffic from Prometheus's HTTP API."""

    def __init__(self, address: str, version_label: str = "version") -> None:
        self.address = address.rstrip("/")
        self.version_label = version_label

    def _query(self, promql: str) -> float | None:
        url = f"{self.address}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        try:
            with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_SECONDS) as response:
                body = json.loads(response.read())
        except (OSError, ValueError) as exc:
            raise MetricsUnavailableError(f"Prometheus at {self.address}: {exc}") from None
        if body.get("status") != "success":
            raise MetricsUnavailableError(f"Prometheus query failed: {body.get('error', body)}")
        result = body["data"]["result"]
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) else value

    def window(self, target: Target, previous: Counters | None) -> tuple[Window, Counters | None]:
        matchers = (
            f'model_name="{target.model}",namespace="{target.namespace}",'
            f'{self.version_label}="{target.version}"'
        )
        span = f"{max(int(target.interval_seconds), 1)}s"
        requests = self._query(f"sum(increase({REQUEST_COUNT}{{{matchers}}}[{span}]))") or 0.0
        errors = self._query(f'sum(increase({REQUEST_COUNT}{{{matchers},status!="OK"}}[{span}]))') or 0.0
        p99_us = self._query(
            f"histogram_quantile(0.99, sum by (le) (rate({REQUEST_LATENCY_BUCKET}{{{matchers}}}[{span}])))"
        )
        return Window(requests, errors, None if p99_us is None else p99_us / 1000.0), None


def provider_for(spec: Analysis) -> Provider:
    if spec.prometheus is not None:
        return PrometheusApi(spec.prometheus.address, spec.prometheus.version_label)
    return DirectScrape()


# ----- the verdict -----


def evaluate(window: Window, spec: Analysis, at: str) -> CheckResult:
    """Passed, Failed or Inconclusive, with the values and the thresholds in the message."""
    success = 1.0 - window.errors / window.requests if window.requests > 0 else None
    values = {
        "at": at,
        "requests": round(window.requests, 3),
        "success_rate": None if success is None else round(success, 4),
        "latency_p99_ms": None if window.p99_ms is None else round(window.p99_ms, 3),
    }
    if window.requests < spec.min_requests:
        return CheckResult(
            verdict="Inconclusive",
            message=f"{window.requests:g} request(s) < minRequests {spec.min_requests}",
            **values,
        )
    problems = []
    min_success = spec.success_rate.min if spec.success_rate is not None else None
    max_p99 = spec.latency_p99_ms.max if spec.latency_p99_ms is not None else None
    if min_success is not None and success is not None and success < min_success:
        problems.append(f"success rate {success:.4f} < {min_success}")
    if max_p99 is not None and window.p99_ms is not None and window.p99_ms > max_p99:
        problems.append(f"p99 latency {window.p99_ms:.1f}ms > {max_p99:g}ms")
    if problems:
        return CheckResult(
            verdict="Failed", message="; ".join(problems) + f" over {window.requests:g} requests", **values
        )
    p99 = "n/a" if window.p99_ms is None else f"{window.p99_ms:.1f}ms"
    return CheckResult(
        verdict="Passed",
        message=f"success rate {success:.4f}, p99 {p99} over {window.requests:g} requests",
        **values,
    )


def check(
    spec: Analysis, target: Target, previous: Counters | None, at: str
) -> tuple[CheckResult, Counters | None]:
    try:
        window, counters = provider_for(spec).window(target, previous)
    except MetricsUnavailableError as exc:
        return CheckResult(at=at, verdict="Inconclusive", message=str(exc)), previous
    return evaluate(window, spec, at), counters
