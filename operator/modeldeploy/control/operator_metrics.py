"""The operator's own Prometheus metrics, served on ``/metrics``.

The names are the contract: the dashboard, the alert rules and the README's metrics table
use them as they are, so a name is never changed here alone.
Per-resource gauges (phase, canary weight and step) are read from the cache at scrape
time, so a deleted resource's series go with it and a standby reports what it watches
(queries take ``max by (namespace, name)`` over replicas). Counters (reconciles, analysis
checks, rollouts) count what this replica did: a check or a rollout's end is counted by
the replica whose status write recorded it, so each is counted once across a hand-over.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from ..api.names import KIND
from ..api.status import ModelDeploymentStatus, Phase, RolloutResult, Verdict
from ..kube.cache import ObjectCache

LOG = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()
# The custom registry leaves out the default one's collectors; these give the operator's
# memory, CPU and open files (process_*) and the Python version (python_info) to the
# dashboards that size its pod.
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
RECONCILES = Counter(
    "modeldeploy_reconcile",
    "Reconcile passes by result: success, retry (the pass asked to run again: a conflict, "
    "an apply the API server refused) or error.",
    ["result"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "modeldeploy_reconcile_duration_seconds",
    "Time one reconcile pass took, model gate probes and analysis included.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
ANALYSIS_CHECKS = Counter(
    "modeldeploy_analysis_checks",
    "Canary analysis checks recorded in status, by verdict.",
    ["namespace", "name", "verdict"],
    registry=REGISTRY,
)
ROLLOUTS = Counter(
    "modeldeploy_rollouts",
    "Rollouts that ended, by result (Promoted, RolledBack, Aborted).",
    ["namespace", "name", "result"],
    registry=REGISTRY,
)
BUILD_INFO = Gauge(
    "modeldeploy_build_info", "The operator's version; always 1.", ["version"], registry=REGISTRY
)
LEADER = Gauge(
    "modeldeploy_leader",
    "1 while this replica leads (always 1 without leader election), else 0.",
    registry=REGISTRY,
)
SHARDS_HELD = Gauge(
    "modeldeploy_shards_held",
    "Shards this replica holds (with one shard: 1 while it leads, else 0).",
    registry=REGISTRY,
)
NOTIFICATIONS = Counter(
    "modeldeploy_notifications",
    "Notifications by webhook, event and result: delivered, failed (every attempt failed or the "
    "receiver refused it) or dropped (the webhook's queue was full).",
    ["webhook", "event", "result"],
    registry=REGISTRY,
)
NOTIFICATION_QUEUE = Gauge(
    "modeldeploy_notification_queue_depth",
    "Notifications waiting for their webhook.",
    ["webhook"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "modeldeploy_workqueue_depth",
    "Resources due for a pass and waiting for a worker.",
    registry=REGISTRY,
)


def _package_version() -> str:
    try:
        return version("modeldeploy")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


BUILD_INFO.labels(_package_version()).set(1)


class ResourceCollector(Collector):
    """Phase, canary weight and step of every cached ModelDeployment, at scrape time."""

    def __init__(self, cache: ObjectCache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["namespace", "name"]
        phase = GaugeMetricFamily(
            "modeldeploy_phase",
            "1 for the resource's current phase, 0 for the others.",
            labels=[*labels, "phase"],
        )
        weight = GaugeMetricFamily(
            "modeldeploy_canary_weight", "Percent of traffic the canary is configured for.", labels=labels
        )
        step = GaugeMetricFamily(
            "modeldeploy_canary_step", "The canary's current step (0-based).", labels=labels
        )
        for namespace, name in self.cache.owner_keys():
            body = self.cache.get(KIND, namespace, name)
            status = (body or {}).get("status")
            if not isinstance(status, dict):
                continue
            current = status.get("phase")
            for known in Phase:
                phase.add_metric([namespace, name, known.value], 1.0 if current == known.value else 0.0)
            canary = status.get("canary")
            canary = canary if isinstance(canary, dict) else {}
            weight.add_metric([namespace, name], float(canary.get("weight") or 0))
            step.add_metric([namespace, name], float(canary.get("step") or 0))
        yield phase
        yield weight
        yield step


class CacheCollector(Collector):
    """What the cache holds, by kind, at scrape time: with shards, a replica holds only the
    children of its shards, so this falls as replicas are added."""

    def __init__(self, cache: ObjectCache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[GaugeMetricFamily]:
        cached = GaugeMetricFamily(
            "modeldeploy_cached_objects",
            "Objects in the operator's cache (ModelDeployments and the children it watches), by kind.",
            labels=["kind"],
        )
        for kind, count in sorted(self.cache.counts().items()):
            cached.add_metric([kind], float(count))
        yield cached


def watch(
    cache: ObjectCache,
    queue_depth: Callable[[], int],
    leading: Callable[[], bool],
    shards_held: Callable[[], int] = lambda: 1,
) -> None:
    """Tie the scrape-time gauges to this process's cache, queue, leader elector and shards."""
    REGISTRY.register(ResourceCollector(cache))
    REGISTRY.register(CacheCollector(cache))
    QUEUE_DEPTH.set_function(lambda: float(queue_depth()))
    LEADER.set_function(lambda: 1.0 if leading() else 0.0)
    SHARDS_HELD.set_function(lambda: float(shards_held()))


_TRACKED: set[tuple[str, str]] = set()
_TRACKING = threading.Lock()


def track(namespace: str, name: str) -> None:
    """Start a resource's counters at 0: a series born at 1 hides its first increase from
    Prometheus' increase() and rate(), and a first rollback would never show."""
    with _TRACKING:
        if (namespace, name) in _TRACKED:
            return
        _TRACKED.add((namespace, name))
    for verdict in Verdict:
        ANALYSIS_CHECKS.labels(namespace, name, verdict.value)
    for result in RolloutResult:
        ROLLOUTS.labels(namespace, name, result.value)


def record_status_change(
    namespace: str,
    name: str,
    previous: ModelDeploymentStatus,
    status: ModelDeploymentStatus,
    verdict: Verdict | None,
) -> None:
    """Count what a status write that landed recorded: the pass's analysis check (a pass
    whose write was refused counts nothing; its check is made again) and rollout ends."""
    if verdict is not None:
        ANALYSIS_CHECKS.labels(namespace, name, verdict.value).inc()
    known = {(h.version, h.result, h.at) for h in previous.history}
    for entry in status.history:
        if (entry.version, entry.result, entry.at) not in known:
            ROLLOUTS.labels(namespace, name, entry.result.value).inc()


def forget(namespace: str, name: str) -> None:
    """Drop a deleted resource's counters, so its series end with it."""
    with _TRACKING:
        _TRACKED.discard((namespace, name))
    for verdict in Verdict:
        _remove(ANALYSIS_CHECKS, namespace, name, verdict.value)
    for result in RolloutResult:
        _remove(ROLLOUTS, namespace, name, result.value)


def _remove(counter: Counter, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never counted
        counter.remove(*labels)


def serve(address: str, port: int, path: str) -> ThreadingHTTPServer:
    """Serve the registry on ``http://address:port/path`` from a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != path:
                self.send_error(404)
                return
            body = generate_latest(REGISTRY)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per scrape would drown the decisions

    server = ThreadingHTTPServer((address, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    LOG.info("metrics on http://%s:%d%s", address, server.server_port, path)
    return server
