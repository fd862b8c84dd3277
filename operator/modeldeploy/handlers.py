"""Thin kopf wiring: watches feed the cache and the work queue; worker threads reconcile.

Only event-watching handlers are used. kopf's change handlers would store their
progress in annotations and its daemons and timers add finalizers; with event
handlers the operator writes nothing but children, status and Events, and a
ModelDeployment deletes even while the operator is down.

Run: ``kopf run --standalone --all-namespaces -m modeldeploy.handlers``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import kopf

from . import builders, kube, models
from .builders import LABEL_MANAGED_BY, LABEL_NAME, MANAGED_BY
from .cache import ObjectCache
from .reconciler import Reconciler
from .watched import WATCHED
from .workqueue import WorkQueue, run_workers

LOG = logging.getLogger(__name__)
RESYNC_SECONDS = float(os.environ.get("MODELDEPLOY_RESYNC_SECONDS", "600"))
# Reconciles are I/O-bound (API calls, model checks): threads overlap the waits. A busy
# API server creates Services one at a time (its ClusterIP allocator holds a lock across
# a request to itself), so new resources' passes queue there; with 16 workers the queue
# ran dry while workers did other passes' requests (make bench: 5-6 Services/s, against
# 8-10/s with 32 workers and 10-15/s for the floor's direct applies).
WORKERS = int(os.environ.get("MODELDEPLOY_WORKERS", "32"))


@dataclass
class Runtime:
    cache: ObjectCache = field(default_factory=ObjectCache)
    queue: WorkQueue = field(default_factory=WorkQueue)
    reconciler: Reconciler | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    # Namespaces whose children were listed into the cache (see _fill_namespace).
    filled: set[str] = field(default_factory=set)
    filling: threading.Lock = field(default_factory=threading.Lock)


RUNTIME = Runtime()


def _handle(key: Any) -> float | None:
    namespace, name = key
    assert RUNTIME.reconciler is not None
    _fill_namespace(RUNTIME.reconciler.kube, namespace)
    return RUNTIME.reconciler.reconcile(namespace, name)


def _resync_loop() -> None:
    """Re-run every ModelDeployment now and then: repairs drift no watch reports."""
    while not RUNTIME.stopping.wait(RESYNC_SECONDS):
        assert RUNTIME.reconciler is not None
        RUNTIME.reconciler.clear_memo()
        for key in RUNTIME.cache.model_deployment_keys():
            RUNTIME.queue.add(key)


class NoDiffBase(kopf.DiffBaseStorage):
    """Keeps no "last handled" state: with only event handlers nothing reads a diff.

    kopf's default deep-copies every object of every watch event to diff it against an
    annotation; under load that was half the operator's CPU, for a diff no handler uses.
    """

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[kopf.FieldSpec] | None = None
    ) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return kopf.BodyEssence()

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass  # nothing is kept, so nothing is ever written


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Watch only the children we made: the API server filters, not the operator.
    for watched in WATCHED:
        if watched.selector:
            settings.watching.label_selectors[watched.group or "v1", watched.plural] = watched.selector
    settings.posting.level = logging.WARNING
    settings.persistence.diffbase_storage = NoDiffBase()
    # kopf logs every event handler's success at INFO: thousands of lines an hour.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    settings.watching.server_timeout = 300
    options = builders.BuildOptions(
        fetcher_image=os.environ.get("MODELDEPLOY_FETCHER_IMAGE", builders.BuildOptions.fetcher_image)
    )
    client = kube.Kube(kube.load_client_config(connections=WORKERS))
    RUNTIME.reconciler = Reconciler(client, RUNTIME.cache, options)
    run_workers(RUNTIME.queue, _handle, WORKERS)
    threading.Thread(target=_resync_loop, name="resync", daemon=True).start()


def _fill_namespace(client: kube.Kube, namespace: str) -> None:
    """List a namespace's children into the cache before its first pass.

    A pass that saw a resource but not yet its children (kopf's watches list them in
    their own time) would report it Pending, and write that, right after a restart.
    Only namespaces kopf delivers resources from are listed, so an operator confined
    to some namespaces needs no cluster-wide rights and caches nothing beyond them.
    """
    if namespace in RUNTIME.filled:
        return
    with RUNTIME.filling:
        if namespace in RUNTIME.filled:
            return
        count = 0
        for watched in WATCHED:
            if watched.kind != "ModelDeployment":  # those come from kopf, which queued this pass
                for item in client.list_namespaced(
                    watched.api_prefix, watched.plural, namespace, watched.selector
                ):
                    RUNTIME.cache.upsert(watched.kind, item)
                    count += 1
        RUNTIME.filled.add(namespace)
    LOG.info("cache filled with %d children in namespace %s", count, namespace)


@kopf.on.cleanup()
async def stop(**_: Any) -> None:
    RUNTIME.stopping.set()
    RUNTIME.queue.close()


@kopf.on.probe(id="cachedObjects")
async def cached_objects(**_: Any) -> int:
    return len(RUNTIME.cache)


def _observe(kind: str, event: kopf.RawEvent) -> tuple[str, str] | None:
    """Update the cache from one watch event; the ModelDeployment to reconcile, if any."""
    body: dict[str, Any] = dict(event["object"])
    deleted = event["type"] == "DELETED"
    meta = body.get("metadata") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    if deleted:
        RUNTIME.cache.remove(kind, namespace, name)
    elif not RUNTIME.cache.upsert(kind, body):
        return None  # our own write coming back: the pass that made it has run
    if kind == "ModelDeployment":
        if deleted and RUNTIME.reconciler is not None:
            RUNTIME.reconciler.forget(namespace, name)
            return None
        return namespace, name
    owner = (meta.get("labels") or {}).get(LABEL_NAME)
    return (namespace, owner) if owner else None


def _enqueue(key: tuple[str, str] | None, urgent: bool = True) -> None:
    """Children's changes are urgent: they finish work under way (a pod waiting for its
    model gate), which should not wait behind every new resource's first pass."""
    if key is not None:
        RUNTIME.queue.add(key, urgent=urgent)


@kopf.on.event(models.GROUP, models.VERSION, models.PLURAL)
async def model_deployment_event(event: kopf.RawEvent, **_: Any) -> None:
    _enqueue(_observe("ModelDeployment", event), urgent=False)


@kopf.on.event("apps", "v1", "deployments", labels={LABEL_MANAGED_BY: MANAGED_BY})
async def deployment_event(event: kopf.RawEvent, **_: Any) -> None:
    _enqueue(_observe("Deployment", event))


@kopf.on.event("v1", "pods", labels={LABEL_MANAGED_BY: MANAGED_BY})
async def pod_event(event: kopf.RawEvent, **_: Any) -> None:
    _enqueue(_observe("Pod", event))


@kopf.on.event("autoscaling", "v2", "horizontalpodautoscalers", labels={LABEL_MANAGED_BY: MANAGED_BY})
async def hpa_event(event: kopf.RawEvent, **_: Any) -> None:
    _enqueue(_observe("HorizontalPodAutoscaler", event))


@kopf.on.event("networking.k8s.io", "v1", "networkpolicies", labels={LABEL_MANAGED_BY: MANAGED_BY})
async def network_policy_event(event: kopf.RawEvent, **_: Any) -> None:
    _enqueue(_observe("NetworkPolicy", event))


@kopf.on.event("gateway.networking.k8s.io", "v1", "httproutes", labels={LABEL_MANAGED_BY: MANAGED_BY})
async def http_route_event(event: kopf.RawEvent, **_: Any) -> None:
    _enqueue(_observe("HTTPRoute", event))
