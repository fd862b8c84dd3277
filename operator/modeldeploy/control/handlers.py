"""Thin kopf wiring: watches feed the cache and the work queue; worker threads reconcile.

Only event-watching handlers are used, one per watched kind of ``kinds``. kopf's
change handlers would store their progress in annotations and its daemons and
timers add finalizers; with event handlers the operator writes nothing but
children, status and Events, and a ModelDeployment deletes even while the
operator is down.

Run: ``python -m modeldeploy.control --standalone --all-namespaces`` (``kopf run`` with
these handlers, without the kubernetes package: see ``__main__``).
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import kopf

from ..api.names import KIND, LABEL_NAME
from . import credentials, kube, operator_metrics
from .cache import ObjectCache, slim
from .kinds import WATCHED, Kind
from .leader import LeaderElector, LeaseApi, LeaseTimings
from .notifications import load_config
from .notifier import Notifier
from .reconcile import Reconciler
from .settings import Settings
from .workqueue import RetryLaterError, WorkQueue, run_workers

LOG = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings = field(default_factory=Settings.from_env)
    cache: ObjectCache = field(default_factory=ObjectCache)
    queue: WorkQueue = field(default_factory=WorkQueue)
    reconciler: Reconciler | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    # Namespaces whose children were listed into the cache (see _fill_namespace).
    filled: set[str] = field(default_factory=set)
    filling: threading.Lock = field(default_factory=threading.Lock)
    # With leader election on: only the leader's workers reconcile (see leader.py).
    elector: LeaderElector | None = None


RUNTIME = Runtime()


def _leading() -> bool:
    return RUNTIME.elector is None or RUNTIME.elector.is_leader()


def _handle(key: Any) -> float | None:
    namespace, name = key
    assert RUNTIME.reconciler is not None
    if not _leading():
        return None  # a standby: its watches keep the cache warm; the leader reconciles
    started = time.monotonic()
    result = "error"
    try:
        _fill_namespace(RUNTIME.reconciler.kube, namespace)
        again = RUNTIME.reconciler.reconcile(namespace, name)
        result = "success"
        return again
    except RetryLaterError:
        result = "retry"
        raise
    finally:
        operator_metrics.RECONCILES.labels(result).inc()
        operator_metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)


def _reconcile_everything() -> None:
    """A replica that starts leading passes over every resource it has cached: what the
    old leader left half done, and what this one skipped while standing by."""
    for key in RUNTIME.cache.model_deployment_keys():
        RUNTIME.queue.add(key)


def _resync_loop() -> None:
    """Re-run every ModelDeployment now and then: repairs drift no watch reports."""
    while not RUNTIME.stopping.wait(RUNTIME.settings.resync_seconds):
        assert RUNTIME.reconciler is not None
        RUNTIME.reconciler.applier.clear()
        for key in RUNTIME.cache.model_deployment_keys():
            RUNTIME.queue.add(key)


def _relist_loop() -> None:
    """List every watched kind of the filled namespaces again now and then: after a watch gap
    (an API server restart, a 410 re-list) no DELETED event comes for what went meanwhile,
    and a ghost pod would count as serving, a deleted Deployment would never come back."""
    first = True
    while not RUNTIME.stopping.wait(RUNTIME.settings.relist_seconds):
        assert RUNTIME.reconciler is not None
        if first:
            LOG.info("relisting the watched kinds every %gs", RUNTIME.settings.relist_seconds)
            first = False
        for namespace in sorted(RUNTIME.filled):
            try:
                for owner in relist(RUNTIME.reconciler.kube, namespace):
                    RUNTIME.queue.add((namespace, owner), urgent=True)
            except Exception:  # the API server may be down: the next round tries again
                LOG.warning("relisting namespace %s failed", namespace, exc_info=True)


def relist(client: kube.Kube, namespace: str) -> set[str]:
    """Replace the cache's objects of ``namespace`` by a fresh list; the owners that changed."""
    touched: set[str] = set()
    for watched in WATCHED:
        since = RUNTIME.cache.mark()
        items = client.list_namespaced(watched, namespace, each=partial(slim, watched.kind))
        touched |= RUNTIME.cache.replace(watched.kind, namespace, items, since)
    if touched:
        LOG.info("relist of %s found changes no watch reported for %s", namespace, sorted(touched))
    return touched


class NoDiffBase(kopf.DiffBaseStorage):
    """Keeps no "last handled" state: with only event handlers nothing reads a diff.

    kopf's default deep-copies every object of every watch event to diff it against an
    annotation; under load that was a large share of the operator's CPU, for a diff no
    handler uses.
    """

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[kopf.FieldSpec] | None = None
    ) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return kopf.BodyEssence()

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass  # nothing is kept, so nothing is ever written


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf's watches log in with the operator's own credentials (control/credentials.py),
    so watches and writes always go to the same cluster as the same user. kopf calls this
    again after a 401, and before an exec plugin's credential expires."""
    found = credentials.load()
    identity = found.identity()
    expires = identity.expires
    return kopf.ConnectionInfo(
        server=found.server,
        ca_data=found.ca,
        insecure=found.insecure or None,
        token=identity.token,
        certificate_data=identity.certificate,
        private_key_data=identity.key,
        default_namespace=found.namespace,
        expiration=datetime.datetime.fromtimestamp(expires, datetime.UTC) if expires is not None else None,
    )


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
    ours = RUNTIME.settings
    client = kube.Kube(kube.load_client_config(connections=ours.workers))
    RUNTIME.reconciler = Reconciler(client, RUNTIME.cache, ours.build_options, clock=client.server_now)
    if ours.notifications_config:
        config = load_config(ours.notifications_config)
        RUNTIME.reconciler.notifier = Notifier(config)
        LOG.info(
            "notifying %d webhook(s): %s", len(config.webhooks), ", ".join(w.name for w in config.webhooks)
        )
    if ours.leader_election:
        RUNTIME.elector = LeaderElector(
            LeaseApi(client.raw, ours.lease_namespace, ours.lease_name, ours.renew_deadline_seconds),
            ours.identity,
            LeaseTimings(ours.lease_duration_seconds, ours.renew_deadline_seconds, ours.retry_period_seconds),
            on_started_leading=_reconcile_everything,
        )
        RUNTIME.reconciler.leading = RUNTIME.elector.is_leader
        RUNTIME.elector.start()
    operator_metrics.watch(RUNTIME.cache, RUNTIME.queue.ready, _leading)
    if ours.metrics_port:
        operator_metrics.serve(ours.metrics_address, ours.metrics_port, ours.metrics_path)
    run_workers(RUNTIME.queue, _handle, ours.workers)
    threading.Thread(target=_resync_loop, name="resync", daemon=True).start()
    threading.Thread(target=_relist_loop, name="relist", daemon=True).start()


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
            if watched.kind != KIND:  # those come from kopf, which queued this pass
                for item in client.list_namespaced(watched, namespace, each=partial(slim, watched.kind)):
                    RUNTIME.cache.upsert(watched.kind, item)
                    count += 1
        RUNTIME.filled.add(namespace)
    LOG.info("cache filled with %d children in namespace %s", count, namespace)


@kopf.on.cleanup()
async def stop(**_: Any) -> None:
    RUNTIME.stopping.set()
    RUNTIME.queue.close()
    if RUNTIME.reconciler is not None and RUNTIME.reconciler.notifier is not None:
        RUNTIME.reconciler.notifier.close()
    if RUNTIME.elector is not None:
        RUNTIME.elector.release()


@kopf.on.probe(id="leader")
async def leader(**_: Any) -> str:
    """Who this replica is and whether it leads; unhealthy (so /healthz fails) when it
    leads but could not renew its Lease in time."""
    elector = RUNTIME.elector
    if elector is None:
        return "no leader election"
    if not elector.healthy():
        # Permanent: a retried probe would hold /healthz open instead of failing it now.
        raise kopf.PermanentError(f"{elector.identity} leads but has not renewed its lease in time")
    return f"{elector.identity}: {'leading' if elector.is_leader() else 'standing by'}"


@kopf.on.probe(id="cachedObjects")
async def cached_objects(**_: Any) -> int:
    return len(RUNTIME.cache)


@kopf.on.probe(id="longestPassSeconds")
async def longest_pass(**_: Any) -> float:
    # Every request a pass makes has a timeout: a figure far past them means a stuck worker.
    return round(RUNTIME.queue.longest_pass_seconds(), 1)


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
    if kind == KIND:
        if deleted and RUNTIME.reconciler is not None:
            RUNTIME.reconciler.forget(namespace, name)
            return None
        return namespace, name
    owner = (meta.get("labels") or {}).get(LABEL_NAME)
    return (namespace, owner) if owner else None


def user_acted(held: dict[str, Any] | None, incoming: dict[str, Any]) -> bool:
    """A ModelDeployment event that carries a person's action: a spec edit (a new generation)
    or a changed annotation (promote, abort, retry). Those go before everything queued."""
    if held is None:
        return False  # a first pass: normal priority, behind work under way
    old, new = held.get("metadata") or {}, incoming.get("metadata") or {}
    return bool(
        old.get("generation") != new.get("generation") or old.get("annotations") != new.get("annotations")
    )


def _event_handler(kind: Kind) -> Callable[..., Awaitable[None]]:
    # Children's changes are urgent: they finish work under way (a pod waiting for its
    # model gate), which should not wait behind every new resource's first pass. A person's
    # edit or one-shot action goes first of all: an abort must not wait behind timers.
    async def on_event(event: kopf.RawEvent, **_: Any) -> None:
        acted = False
        if kind.kind == KIND:
            meta = event["object"].get("metadata") or {}
            held = RUNTIME.cache.get(KIND, meta.get("namespace", ""), meta.get("name", ""))
            acted = user_acted(held, dict(event["object"]))
        key = _observe(kind.kind, event)
        if key is not None:
            RUNTIME.queue.add(key, urgent=kind.kind != KIND, first=acted)

    return on_event


for _kind in WATCHED:
    kopf.on.event(
        group=_kind.group,
        version=_kind.version,
        plural=_kind.plural,
        id=f"{_kind.kind}-event",
        labels=_kind.labels or None,
    )(_event_handler(_kind))
