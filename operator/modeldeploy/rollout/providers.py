"""Where a canary's traffic of one interval is read from: two providers behind one interface.

- ``DirectScrape`` reads TF Serving's metrics endpoint on every canary pod and
  subtracts the cumulative counters kept in status at the previous check (so an
  operator restart loses nothing);
- ``PrometheusApi`` asks Prometheus's HTTP API for ``increase()`` over the interval.
"""

from __future__ import annotations

import json
import math
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Protocol

from ..api.names import METRICS_PATH, REST_PORT
from ..api.spec import Analysis
from ..api.status import Counters
from .metrics import REQUEST_COUNT, REQUEST_LATENCY_BUCKET, difference, parse_exposition, quantile

SCRAPE_TIMEOUT_SECONDS = 2.0


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


class DirectScrape:
    """Scrapes each canary pod's TF Serving metrics endpoint."""

    def __init__(self, port: int = REST_PORT, path: str = METRICS_PATH) -> None:
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
