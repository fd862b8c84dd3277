"""Thin kopf wiring: watches feed the cache and the work queue; worker threads reconcile.

kopf watches the ModelDeployments; their children are watched by our own reflectors
(control/reflector.py), per namespace that holds a ModelDeployment. Only an
event-watching handler is used with kopf. kopf's
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
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import kopf

from ..api.names import KIND, LABEL_NAME
from ..kube import credentials
from ..kube.cache import ObjectCache, slim
from ..kube.client import Kube, load_client_config
from ..kube.kinds import BY_KIND, WATCHED
from ..kube.lease import LeaderElector, LeaseApi, LeaseTimings
from ..kube.reflector import Reflector
from ..kube.transport import ApiClient
from ..kube.workqueue import RetryLaterError, WorkQueue, run_workers
from . import operator_metrics
from .notice_delivery import Notifier
from .notices import load_config
from .reconcile import Reconciler
from .settings import Settings

LOG = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings = field(default_factory=Settings.from_env)
    cache: ObjectCache = field(default_factory=ObjectCache)
    queue: WorkQueue = field(default_factory=WorkQueue)
    reconciler: Reconciler | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    # The children's reflectors, by namespace (see _watch_namespace).
    reflectors: dict[str, list[Reflector]] = field(default_factory=dict)
    watching: threading.Lock = field(default_factory=threading.Lock)
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
        _fill_namespace(namespace)
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
    """List the ModelDeployments again now and then. kopf re-watches after a gap (an API
    server restart, a 410) with a list that reports nothing for what was deleted meanwhile,
    and a ghost would keep being reconciled. The children need no relist: their reflectors
    resume their watches or list again (reflector.py)."""
    first = True
    while not RUNTIME.stopping.wait(RUNTIME.settings.relist_seconds):
        assert RUNTIME.reconciler is not None
        if first:
            LOG.info("relisting ModelDeployments every %gs", RUNTIME.settings.relist_seconds)
            first = False
        with RUNTIME.watching:  # new namespaces are added by kopf's event loop meanwhile
            namespaces = sorted(RUNTIME.reflectors)
        for namespace in namespaces:
            try:
                _queue_owners(namespace, relist(RUNTIME.reconciler.kube, namespace))
            except Exception:  # the API server may be down: the next round tries again
                LOG.warning("relisting namespace %s failed", namespace, exc_info=True)


def relist(client: Kube, namespace: str) -> set[str]:
    """Replace the cache's ModelDeployments of ``namespace`` by a fresh list; the names of
    those that changed or went.

    The list is of names and versions only; a body is read only where the cache holds
    none or another version, which on a steady cluster is never. Of 1000 ModelDeployments
    a list of whole bodies cost the API server ~94 ms and us ~57 ms, every minute, on the
    cores the workers share; names and versions cost ~44 and ~31 ms (tests/bench/relist_cost.py).
    Nor is a body read where the cache changed while the list was on its way (our own
    status write, a watch event): the cache is newer than the list there, and keeps it."""
    cache = RUNTIME.cache
    since = cache.mark()
    items: list[dict[str, Any]] = []
    for name, version in client.list_versions(BY_KIND[KIND], namespace).items():
        held = cache.get(KIND, namespace, name)
        differs = held is None or held["metadata"].get("resourceVersion") != version
        # Changed since the mark: newer than the list, and replace() keeps it.
        if differs and not cache.changed_since(KIND, namespace, name, since):
            held = client.read_model_deployment(namespace, name)  # None: deleted meanwhile
            held = slim(KIND, held) if held is not None else None
        if held is not None:
            items.append(held)
    touched = cache.replace(KIND, namespace, items, since)
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
    settings.posting.level = logging.WARNING
    settings.persistence.diffbase_storage = NoDiffBase()
    # kopf logs every event handler's success at INFO: thousands of lines an hour.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    settings.watching.server_timeout = 300
    ours = RUNTIME.settings
    api = load_client_config(connections=ours.workers)
    client = Kube(api, watch_api=ApiClient(api.credentials, connections=len(CHILD_WATCHES)))
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


# Children watched by reflectors; ModelDeployments come through kopf.
MD_KIND = BY_KIND[KIND]
CHILD_WATCHES = tuple(k for k in WATCHED if k.kind != KIND)
# How long a pass waits for its namespace's first lists before it is tried again later.
FILL_WAIT_SECONDS = 30.0


def _watch_namespace(namespace: str) -> list[Reflector]:
    """Start listing and watching the children of ``namespace``, once. Called for every
    ModelDeployment event, so a standby's cache is warm before it ever leads."""
    with RUNTIME.watching:
        reflectors = RUNTIME.reflectors.get(namespace)
        if reflectors is None:
            assert RUNTIME.reconciler is not None, "started before configure"
            client = RUNTIME.reconciler.kube
            reflectors = [
                Reflector(
                    client,
                    RUNTIME.cache,
                    watched,
                    namespace,
                    partial(_on_child_event, watched.kind),
                    partial(_queue_owners, namespace),
                    RUNTIME.stopping,
                ).start()
                for watched in CHILD_WATCHES
            ]
            RUNTIME.reflectors[namespace] = reflectors
            LOG.info("watching %s in namespace %s", ", ".join(k.plural for k in CHILD_WATCHES), namespace)
        return reflectors


def _fill_namespace(namespace: str) -> None:
    """Wait for the first list of a namespace's children before its first pass.

    A pass that saw a resource but not yet its children would report it Pending, and
    write that, right after a restart."""
    deadline = time.monotonic() + FILL_WAIT_SECONDS
    for reflector in _watch_namespace(namespace):
        if not reflector.synced.wait(max(0.0, deadline - time.monotonic())):
            raise RetryLaterError(f"{reflector.kind.plural} of namespace {namespace} not listed yet")


def _queue_owners(namespace: str, owners: set[str]) -> None:
    for owner in owners:
        RUNTIME.queue.add((namespace, owner), urgent=True)


def _on_child_event(kind: str, type_: str, body: dict[str, Any]) -> None:
    # Children's changes are urgent: they finish work under way (a pod waiting for its
    # model gate), which should not wait behind every new resource's first pass.
    key = _observe(kind, type_, body)
    if key is not None:
        RUNTIME.queue.add(key, urgent=True)


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


def _observe(kind: str, type_: str | None, body: dict[str, Any]) -> tuple[str, str] | None:
    """Update the cache from one watch event; the ModelDeployment to reconcile, if any."""
    deleted = type_ == "DELETED"
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


async def on_model_deployment(event: kopf.RawEvent, **_: Any) -> None:
    """A ModelDeployment's watch event: cached, its namespace's children watched, and a
    pass queued. A person's edit or one-shot action (promote, abort, retry) goes first of
    all: an abort must not wait behind timers."""
    meta = event["object"].get("metadata") or {}
    namespace = meta.get("namespace", "")
    held = RUNTIME.cache.get(KIND, namespace, meta.get("name", ""))
    acted = user_acted(held, dict(event["object"]))
    key = _observe(KIND, event["type"], dict(event["object"]))
    if namespace and event["type"] != "DELETED":
        _watch_namespace(namespace)
    if key is not None:
        RUNTIME.queue.add(key, first=acted)


kopf.on.event(group=MD_KIND.group, version=MD_KIND.version, plural=MD_KIND.plural, id=f"{KIND}-event")(
    on_model_deployment
)
