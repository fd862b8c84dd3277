"""Where a canary's traffic of one interval is read from: two providers behind one interface.

- ``DirectScrape`` reads TF Serving's metrics endpoint on every canary pod and
  subtracts the cumulative counters kept in status at the previous check (so an
  operator restart loses nothing);
- ``PrometheusApi`` asks Prometheus's HTTP API for ``increase()`` over the interval.
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Protocol

from ..api.conditions import Reason
from ..api.names import METRICS_PATH, REST_PORT
from ..api.spec import Analysis
from ..api.status import Counters, PodCounters
from ..rollout.bounded_json import loads_bounded
from ..rollout.metrics import (
    REQUEST_COUNT,
    REQUEST_LATENCY_BUCKET,
    MetricsFormatError,
    parse_exposition,
    quantile,
    totals,
    window_counts,
)
from ..rollout.window import MESSAGE_LIMIT, Window
from . import bounded_http

SCRAPE_TIMEOUT_SECONDS = 2.0
# Canary pods one check scrapes at a time.
SCRAPES_AT_ONCE = 16
# A TF Serving metrics page is a few kB per model; Prometheus answers to our queries less.
MAX_REPLY_BYTES = 1 << 20


class MetricsUnavailableError(Exception):
    """Metrics could not be read; the check is inconclusive."""

    def __init__(self, message: str) -> None:
        super().__init__(message[:MESSAGE_LIMIT])


@dataclass(frozen=True)
class StableTarget:
    """The stable version a relative check compares the canary with."""

    version: int
    pods: tuple[tuple[str, str], ...]  # (pod name, pod IP) of the stable pods that serve
    previous: Counters | None = None  # its counters at the last check (pods scrape)


@dataclass(frozen=True)
class Target:
    namespace: str
    model: str
    version: int
    pods: tuple[tuple[str, str], ...]  # (pod name, pod IP) of the canary pods that serve
    interval_seconds: float
    # The Prometheus queries' range (analysis.window); the pods provider counts between checks.
    window_seconds: float | None = None
    stable: StableTarget | None = None  # with analysis.relative, when a stable serves

    def of_stable(self, stable: StableTarget) -> Target:
        """The same read for the stable's pods or version, over the same window."""
        return replace(self, version=stable.version, pods=stable.pods, stable=None)


class Provider(Protocol):
    def window(self, target: Target, previous: Counters | None) -> tuple[Window, Counters | None]: ...


def scrape_pods(per_pod: dict[str, PodCounters], previous: Counters | None) -> tuple[Window, Counters]:
    """The interval's window from each pod's cumulative counters, and the counters to keep."""
    delta = window_counts(per_pod, previous)
    p99_us = quantile(0.99, delta.buckets)
    p99_ms = None if p99_us is None else p99_us / 1000.0
    return Window(delta.requests, delta.errors, p99_ms, delta.buckets), totals(per_pod)


class DirectScrape:
    """Scrapes each canary pod's TF Serving metrics endpoint."""

    def __init__(self, port: int = REST_PORT, path: str = METRICS_PATH) -> None:
        self.port, self.path = port, path

    def scrape(self, model: str, ip: str) -> PodCounters:
        url = f"http://{ip}:{self.port}{self.path}"
        try:
            status, body = bounded_http.get(url, SCRAPE_TIMEOUT_SECONDS, MAX_REPLY_BYTES)
            if status != 200:
                raise MetricsUnavailableError(f"cannot scrape {ip}: HTTP {status}")
            return parse_exposition(body.decode("utf-8"), model)
        except bounded_http.FetchError as exc:
            raise MetricsUnavailableError(f"cannot scrape {ip}: {exc}") from None
        except UnicodeDecodeError:
            raise MetricsUnavailableError(f"cannot scrape {ip}: the metrics are not UTF-8") from None
        except MetricsFormatError as exc:
            raise MetricsUnavailableError(f"cannot read the metrics of {ip}: {exc}") from None

    def window(self, target: Target, previous: Counters | None) -> tuple[Window, Counters | None]:
        return scrape_pods(self.scrape_all(target.model, target.pods), previous)

    def scrape_all(self, model: str, pods: tuple[tuple[str, str], ...]) -> dict[str, PodCounters]:
        """Every pod's counters, asked at once: one after another, each slow pod would add its
        whole timeout to the worker's pass."""
        if len(pods) < 2:
            return {name: self.scrape(model, ip) for name, ip in pods}
        with ThreadPoolExecutor(max_workers=min(len(pods), SCRAPES_AT_ONCE)) as scrapes:
            futures = {name: scrapes.submit(self.scrape, model, ip) for name, ip in pods}
            return {name: future.result() for name, future in futures.items()}


def _vector_result(body: Any) -> list[Any]:
    """The series of a successful query's answer; anything else makes the metrics unreadable."""
    if not isinstance(body, dict) or body.get("status") != "success":
        raise MetricsUnavailableError(NOT_A_SUCCESS)
    data = body.get("data")
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(result, list):
        raise MetricsUnavailableError("Prometheus answered without data.result")
    return result


def _sample(body: Any) -> float | None:
    """The one value of an instant-vector answer (NaN and infinities as Prometheus wrote them);
    None for no series."""
    result = _vector_result(body)
    if not result:
        return None
    first = result[0]
    value = first.get("value") if isinstance(first, dict) else None
    try:
        number = float(value[1])  # type: ignore[index]
    except (TypeError, ValueError, IndexError):
        raise MetricsUnavailableError("Prometheus answered a sample that is not a number") from None
    return number


def _buckets(body: Any) -> dict[str, float]:
    """A by-le vector answer as cumulative buckets; a series without le or a count that is
    not a count makes the histogram unreadable."""
    result = _vector_result(body)
    buckets: dict[str, float] = {}
    for series in result:
        try:
            le = str(series["metric"]["le"])
            count = _count(float(series["value"][1]), "latency buckets")
            float(le)  # "+Inf" reads as infinity
        except (TypeError, ValueError, KeyError, IndexError):
            raise MetricsUnavailableError("Prometheus answered a histogram bucket that is not one") from None
        buckets[le] = count
    return buckets


def _count(value: float | None, what: str) -> float:
    """A request count: none is 0; NaN, an infinity or a negative number cannot be judged."""
    if value is None:
        return 0.0
    if not math.isfinite(value) or value < 0:
        raise MetricsUnavailableError(f"Prometheus answered {value} for the {what}: not a count")
    return value


def _latency(value: float | None) -> float | None:
    """The p99 in microseconds: NaN is no data (no requests in the range); +Inf lies above
    the largest bucket and is judged so."""
    if value is None or math.isnan(value):
        return None
    if value < 0:
        raise MetricsUnavailableError(f"Prometheus answered {value} for the p99 latency")
    return value


class PrometheusApi:
    """Reads the interval's traffic from Prometheus's HTTP API."""

    def __init__(self, address: str, version_label: str = "version", histogram: bool = False) -> None:
        self.address = address.rstrip("/")
        self.version_label = version_label
        # Also read the window's latency histogram (the relative latency test needs it).
        self.histogram = histogram

    def _query(self, promql: str) -> float | None:
        return _sample(self._answer(promql))

    def _answer(self, promql: str) -> Any:
        """The decoded JSON answer to an instant query."""
        url = f"{self.address}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        try:
            status, raw = bounded_http.get(url, SCRAPE_TIMEOUT_SECONDS, MAX_REPLY_BYTES)
            if status != 200:
                raise MetricsUnavailableError(failed_answer_message(self.address, status))
            body = loads_bounded(raw)
        except bounded_http.FetchError as exc:
            raise MetricsUnavailableError(f"Prometheus at {self.address}: {exc}") from None
        except ValueError:
            raise MetricsUnavailableError(f"Prometheus at {self.address} did not answer JSON") from None
        return body

    def window(self, target: Target, previous: Counters | None) -> tuple[Window, Counters | None]:
        matchers = (
            f'model_name="{target.model}",namespace="{target.namespace}",'
            f'{self.version_label}="{target.version}"'
        )
        # increase() needs two samples in its range: the window, not the check interval, which
        # can be shorter than two scrape intervals and then makes every check Inconclusive.
        span = f"{max(int(target.window_seconds or target.interval_seconds), 1)}s"
        requests = _count(self._query(f"sum(increase({REQUEST_COUNT}{{{matchers}}}[{span}]))"), "requests")
        errors = _count(
            self._query(f'sum(increase({REQUEST_COUNT}{{{matchers},status!="OK"}}[{span}]))'), "errors"
        )
        rates = f"sum by (le) (rate({REQUEST_LATENCY_BUCKET}{{{matchers}}}[{span}]))"
        p99_us = _latency(self._query(f"histogram_quantile(0.99, {rates})"))
        buckets: dict[str, float] = {}
        if self.histogram:
            increases = f"sum by (le) (increase({REQUEST_LATENCY_BUCKET}{{{matchers}}}[{span}]))"
            buckets = _buckets(self._answer(increases))
        return Window(requests, errors, None if p99_us is None else p99_us / 1000.0, buckets), None


# What a query answered without success says: never the answer's own text, which the
# tenant reads in status and which may be another service's.
NOT_A_SUCCESS = "Prometheus answered the query without success"
DEFAULT_PORTS = {"http": 80, "https": 443}


def failed_answer_message(address: str, status: int) -> str:
    """A failed answer's message: its status code only. Its body is never copied into status:
    whatever answered (a proxy, another service) may say what the tenant must not read."""
    return f"Prometheus at {address} answered HTTP {status}"


def prometheus_refusal(address: str, allowed: Sequence[str]) -> str | None:
    """Why ``address`` must not be asked (no entry of the admin's ``allowed`` base URLs,
    MODELDEPLOY_PROMETHEUS_ALLOWED, admits it), or None when one does. Checked before any
    request: the operator's pod reaches what a tenant cannot (metadata, cluster-internal
    services)."""
    if url_admitted(address, allowed):
        return None
    return (
        f"{Reason.PROMETHEUS_NOT_ALLOWED}: {address[:200]} is not among the Prometheus servers the operator "
        "may ask (MODELDEPLOY_PROMETHEUS_ALLOWED); no query was sent"
    )


def url_admitted(address: str, allowed: Sequence[str]) -> bool:
    """Whether one of the admin's base URLs ``allowed`` admits ``address`` (see _admits)."""
    return any(_admits(entry, address) for entry in allowed)


def _admits(entry: str, address: str) -> bool:
    """Whether base URL ``entry`` admits ``address``: the same scheme, host and port (any
    port when the entry ends in ":"), and a path at or below the entry's."""
    wanted, given = urllib.parse.urlsplit(entry), urllib.parse.urlsplit(address)
    if (
        "@" in given.netloc
        or not given.hostname
        or (given.scheme, given.hostname)
        != (
            wanted.scheme,
            wanted.hostname,
        )
    ):
        return False
    try:
        port = given.port or DEFAULT_PORTS.get(given.scheme)
        any_port = wanted.netloc.endswith(":")
        if not any_port and port != (wanted.port or DEFAULT_PORTS.get(wanted.scheme)):
            return False
    except ValueError:  # a port that is not a number
        return False
    return _path_below(wanted.path, given.path)


def _path_below(base: str, path: str) -> bool:
    """``path`` is ``base`` or under it, with no segment a server would resolve upwards."""
    segments = path.split("/")
    if any(s in (".", "..") or "%" in s for s in segments):
        return False
    base, path = base.rstrip("/"), path.rstrip("/")
    return path == base or path.startswith(base + "/")


def provider_for(spec: Analysis) -> Provider:
    if spec.prometheus is not None:
        histogram = spec.relative is not None and spec.relative.latency_p99_max_ratio is not None
        return PrometheusApi(spec.prometheus.address, spec.prometheus.version_label, histogram)
    return DirectScrape()
