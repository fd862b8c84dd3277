"""What the watches feed: each event into the cache and, when it matters, a pass into the
work queue; the children's reflectors of every namespace that holds a ModelDeployment
(with shards, only the children of the shards this replica holds); and the relist that
drops ModelDeployments deleted while kopf's watch was down."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from ..api.names import KIND
from ..kube.cache import Covers, ObjectCache, covers_all
from ..kube.client import Kube
from ..kube.kinds import Kind
from ..kube.reflector import Reflector
from ..kube.workqueue import RetryLaterError, WorkQueue
from .kinds import CHILD_WATCHES, MODEL_DEPLOYMENT
from .shard_select import UNLABELLED, combined, held_selector, labelled_in, labelled_outside, unlabelled

LOG = logging.getLogger(__name__)
Key = tuple[str, str]  # namespace, ModelDeployment name
# How long a pass waits for its namespace's first lists before it is tried again later.
FILL_WAIT_SECONDS = 30.0
# Partial ModelDeployments of a namespace read whole one by one at most; beyond, one list.
WHOLE_LIST_OVER = 20
# Watch groups of one namespace at most (shards taken beside the held ones several times
# over): each holds a thread and a watch per kind, and past a few one relist costs less.
MAX_WATCH_GROUPS = 3


class EventRouter:
    """Watch events into the cache, and the passes they call for into the queue."""

    def __init__(self, cache: ObjectCache, queue: WorkQueue, forget: Callable[[str, str], None]) -> None:
        self.cache = cache
        self.queue = queue
        self._forget = forget  # a deleted ModelDeployment's memos go with it

    def on_child_event(
        self, kind: str, type_: str, body: dict[str, Any], covers: Covers = covers_all
    ) -> None:
        # Children's changes are urgent: they finish work under way (a pod waiting for its
        # model gate), which should not wait behind every new resource's first pass.
        key = self.observe(kind, type_, body, covers)
        if key is not None:
            self.queue.add(key, urgent=True)

    def queue_owners(self, namespace: str, owners: set[str]) -> None:
        for owner in owners:
            self.queue.add((namespace, owner), urgent=True)

    def observe(
        self, kind: str, type_: str | None, body: dict[str, Any], covers: Covers = covers_all
    ) -> Key | None:
        """Update the cache from one watch event; the ModelDeployment to reconcile, if any.
        ``covers``: what of the cache the event's watch speaks for (see ``ObjectCache.remove``)."""
        deleted = type_ == "DELETED"
        meta = body.get("metadata") or {}
        namespace, name = meta.get("namespace", ""), meta.get("name", "")
        if deleted:
            self.cache.remove(kind, namespace, name, covers)
        elif not self.cache.upsert(kind, body):
            return None  # our own write coming back: the pass that made it has run
        if kind == KIND:
            if deleted:
                self._forget(namespace, name)
                return None
            return namespace, name
        owner = (meta.get("labels") or {}).get(self.cache.owner_label)
        return (namespace, owner) if owner else None


def queue_everything(cache: ObjectCache, queue: WorkQueue) -> None:
    """A pass over every cached ModelDeployment."""
    for key in cache.owner_keys():
        queue.add(key)


def confirm_and_queue_everything(
    client: Kube, cache: ObjectCache, queue: WorkQueue, taken: Callable[[Key], bool] = lambda key: True
) -> None:
    """What a replica does as it starts leading: relist the ModelDeployments it holds, so no
    pass acts on a status older than the last one the previous leader wrote (its watch may
    still be behind), then a pass over every one of them, rollouts under way first. With
    shards, ``taken`` says which resources it has just taken: only their namespaces are
    relisted, only they are queued."""
    keys = [key for key in cache.owner_keys() if taken(key)]
    for namespace in sorted({namespace for namespace, _ in keys}):
        try:
            relist(client, cache, namespace, whole=partial(_taken_in, taken, namespace))
        except Exception:  # the status writes stay fenced; the passes still run
            LOG.warning("confirming namespace %s on taking the lease failed", namespace, exc_info=True)
    for key in cache.owner_keys():
        if taken(key):
            # Rollouts under way first: a dead replica's canaries wait for no first pass.
            queue.add(key, urgent=under_way(cache.get(KIND, *key)))


def under_way(body: dict[str, Any] | None) -> bool:
    """Whether a resource's last written status shows a rollout in progress."""
    status = (body or {}).get("status") or {}
    return bool(status.get("canary")) or status.get("phase") == "Progressing"


def keep_identity_of(cache: ObjectCache, given: Callable[[Key], bool]) -> None:
    """What a replica does as it hands shards over: the cache keeps of their resources
    only what it keeps of every other replica's."""
    for namespace, name in cache.owner_keys():
        if given((namespace, name)):
            cache.trim_again(KIND, namespace, name)


def _taken_in(taken: Callable[[Key], bool], namespace: str, name: str) -> bool:
    return taken((namespace, name))


def user_acted(held: dict[str, Any] | None, incoming: dict[str, Any]) -> bool:
    """A ModelDeployment event that carries a person's action: a spec edit (a new generation)
    or a changed annotation (promote, abort, retry). Those go before everything queued."""
    if held is None:
        return False  # a first pass: normal priority, behind work under way
    old, new = held.get("metadata") or {}, incoming.get("metadata") or {}
    return bool(
        old.get("generation") != new.get("generation") or old.get("annotations") != new.get("annotations")
    )


@dataclass
class WatchGroup:
    """The reflectors of one namespace for one set of shards, and the event that stops them."""

    stop: threading.Event
    reflectors: list[Reflector]

    def end(self) -> None:
        """Stop every reflector of the group, and end the watches they wait on."""
        self.stop.set()
        for reflector in self.reflectors:
            reflector.interrupt()


class NamespaceWatches:
    """The children's reflectors, per namespace that holds a ModelDeployment, started on its
    first event: an operator confined to some namespaces needs no cluster-wide rights, and a
    standby's cache is warm before it ever leads. Stopped, and the namespace's children
    dropped from the cache, once its last ModelDeployment is gone: short-lived namespaces
    (a CI run's) would otherwise leave their watch threads behind for good."""

    def __init__(
        self,
        client: Kube,
        cache: ObjectCache,
        router: EventRouter,
        stopping: threading.Event,
        shard_count: int = 1,
    ) -> None:
        self.client = client
        self.cache = cache
        self.router = router
        self.stopping = stopping
        self.shard_count = shard_count
        # The shards whose children are watched; None: every child, labelled or not (one
        # shard, or every shard held). With shards, none until the holder takes some.
        self.held: frozenset[int] | None = None if shard_count <= 1 else frozenset()
        # namespace -> its watch groups: the first for the shards held when it was (re)started,
        # then one for each set of shards taken since, beside it.
        self._groups: dict[str, list[WatchGroup]] = {}
        self._lock = threading.Lock()  # kopf's event loop adds namespaces while others read
        # namespace -> the lock held while a reflector's list or event of it goes into the
        # cache, and while its reflectors are stopped: nothing a stopped reflector saw lands
        # after its replacement listed. One per namespace, so a long list of one holds up
        # no other namespace's events.
        self._guards: dict[str, threading.Lock] = {}

    def namespaces(self) -> list[str]:
        with self._lock:
            return sorted(self._groups)

    def watch(self, namespace: str) -> list[Reflector]:
        """Start listing and watching the children of ``namespace``, once; its reflectors."""
        with self._lock:
            groups = self._groups.get(namespace)
            if groups is None:
                self._guards[namespace] = threading.Lock()
                groups = self._groups[namespace] = [self._start(namespace, self.held, unlabelled_too=True)]
                LOG.info("watching %s in namespace %s", ", ".join(k.plural for k in CHILD_WATCHES), namespace)
            return [reflector for group in groups for reflector in group.reflectors]

    def reselect(self, held: frozenset[int]) -> bool:
        """Watch the children of the ``held`` shards from now on; whether that changed.

        Shards taken beside those already held get reflectors of their own in every
        namespace, beside the running ones: only their children are listed (a replica that
        takes a dead one's shards does not list its own children again), up to
        MAX_WATCH_GROUPS per namespace. Any other change (a shard let go, every shard held,
        the first shards taken) replaces every namespace's reflectors by ones for the whole
        held set, and the children of the shards let go leave the cache."""
        selected = None if self.shard_count <= 1 or len(held) >= self.shard_count else frozenset(held)
        with self._lock:
            before, self.held = self.held, selected
            if selected == before:
                return False
            # Shards taken beside a non-empty held set, none let go: watched beside.
            gained = selected - before if before and selected is not None and before < selected else None
            for namespace, groups in self._groups.items():
                if gained and len(groups) < MAX_WATCH_GROUPS:
                    groups.append(self._start(namespace, gained, unlabelled_too=False))
                else:
                    self._restart(namespace, groups)
        what = f"shards {sorted(selected)}" if selected is not None else "every child"
        LOG.info("watching the children of %s%s", what, f" ({sorted(gained)} beside)" if gained else "")
        return True

    def _restart(self, namespace: str, groups: list[WatchGroup]) -> None:
        """Under the lock: replace the namespace's reflectors by one group for the held shards."""
        with self._guards[namespace]:
            for group in groups:
                group.end()
            if self.held is not None:
                since, let_go = self.cache.mark(), labelled_outside(self.held)
                for kind in CHILD_WATCHES:
                    self.cache.replace(kind.kind, namespace, [], since, let_go)
        groups[:] = [self._start(namespace, self.held, unlabelled_too=True)]

    def _start(self, namespace: str, shards: frozenset[int] | None, unlabelled_too: bool) -> WatchGroup:
        """Under the lock: the reflectors of ``namespace`` for ``shards`` (None: every child),
        started. Each lists and watches by its shards' selector, and speaks for their children
        only (its lists remove no other group's).

        ``unlabelled_too``: each kind has a second reflector for the children without any
        shard label: those an install running one shard made. A held resource's next pass
        applies them again with the label (their manifest, so its hash, changed), and its
        Deployments' pods roll to labelled ones, so they leave this reflector's view one by
        one; it stops once none is left. Until then its pass sees every child it has,
        labelled or not."""
        stop = threading.Event()
        if self.stopping.is_set():
            stop.set()
        if shards is None:
            return WatchGroup(
                stop, [self._reflector(kind, namespace, stop).start() for kind in CHILD_WATCHES]
            )
        reflectors = []
        selector, covers = held_selector(shards, self.shard_count), labelled_in(shards)
        for kind in CHILD_WATCHES:
            selected = replace(kind, selector=combined(kind.selector, selector))
            reflectors.append(self._reflector(selected, namespace, stop, covers).start())
            if unlabelled_too:
                legacy = replace(kind, selector=combined(kind.selector, UNLABELLED))
                reflectors.append(
                    self._reflector(legacy, namespace, stop, unlabelled, until_empty=True).start()
                )
        return WatchGroup(stop, reflectors)

    def unwatch_if_empty(self, namespace: str) -> bool:
        """Stop the reflectors of ``namespace`` and drop its children from the cache, if no
        ModelDeployment of it is left in the cache; whether they were stopped. A reflector
        blocked on its watch ends at the watch's next event or end; what it still sees is
        dropped."""
        with self._lock:
            if any(held == namespace for held, _ in self.cache.owner_keys()):
                return False
            groups = self._groups.pop(namespace, None)
            if groups is None:
                return False
            with self._guards.pop(namespace):
                for group in groups:
                    group.end()
            since = self.cache.mark()
            for kind in CHILD_WATCHES:
                self.cache.replace(kind.kind, namespace, [], since)
        LOG.info("stopped watching namespace %s: no ModelDeployment left in it", namespace)
        return True

    def stop(self) -> None:
        """Stop every namespace's reflectors (the operator is stopping)."""
        with self._lock:
            for groups in self._groups.values():
                for group in groups:
                    group.end()

    def _reflector(
        self,
        kind: Kind,
        namespace: str,
        stop: threading.Event,
        covers: Covers = covers_all,
        until_empty: bool = False,
    ) -> Reflector:
        return Reflector(
            self.client,
            self.cache,
            kind,
            namespace,
            partial(self._deliver, self._guards[namespace], stop, kind.kind, covers),
            partial(self.router.queue_owners, namespace),
            stop,
            covers,
            until_empty,
            self._guards[namespace],
        )

    def _deliver(
        self,
        guard: threading.Lock,
        stop: threading.Event,
        kind: str,
        covers: Covers,
        type_: str,
        body: dict[str, Any],
    ) -> None:
        """A child's event, unless its reflector was stopped meanwhile: the cache dropped
        that namespace, or another selector's reflector took its place, and must not gain
        back what it no longer watches."""
        with guard:
            if not stop.is_set():
                self.router.on_child_event(kind, type_, body, covers)

    def fill(self, namespace: str, wait_seconds: float = FILL_WAIT_SECONDS) -> None:
        """Wait for the first list of a namespace's children before its first pass.

        A pass that saw a resource but not yet its children would report it Pending, and
        write that, right after a restart."""
        deadline = time.monotonic() + wait_seconds
        for reflector in self.watch(namespace):
            if not reflector.synced.wait(max(0.0, deadline - time.monotonic())):
                raise RetryLaterError(f"{reflector.kind.plural} of namespace {namespace} not listed yet")


def relist(
    client: Kube, cache: ObjectCache, namespace: str, whole: Callable[[str], bool] = lambda name: False
) -> set[str]:
    """Replace the cache's ModelDeployments of ``namespace`` by a fresh list; the names of
    those that changed or went.

    The list is of names and versions only; a body is read only where the cache holds
    none or another version, which on a steady cluster is never: a list of whole bodies,
    every relist, would cost the API server and the workers' cores far more. Nor is a
    body read where the cache changed while the list was on its way (our own status
    write, a watch event): the cache is newer than the list there, and keeps it.

    ``whole``: the names whose bodies the cache holds only part of and needs whole now
    (the resources of shards just taken). More than WHOLE_LIST_OVER of them are read with
    one list of whole bodies, page by page, rather than one read each."""
    since = cache.mark()
    wanted = {name for name in cache.partial_names(KIND, namespace) if whole(name)}
    if len(wanted) > WHOLE_LIST_OVER:
        items = client.list_with_version(MODEL_DEPLOYMENT, namespace, each=partial(cache.trim, KIND))[0]
    else:
        items = _listed_bodies(client, cache, namespace, since, wanted)
    touched = cache.replace(KIND, namespace, items, since)
    if touched - wanted:
        LOG.info("relist of %s found changes no watch reported for %s", namespace, sorted(touched - wanted))
    return touched


def _listed_bodies(
    client: Kube, cache: ObjectCache, namespace: str, since: int, wanted: set[str]
) -> list[dict[str, Any]]:
    """The bodies of a list of names and versions: the cache's where it holds that version
    (and, of the ``wanted`` names, holds it whole), else one read each."""
    items: list[dict[str, Any]] = []
    for name, version in client.list_versions(MODEL_DEPLOYMENT, namespace).items():
        held = cache.get(KIND, namespace, name)
        differs = held is None or held["metadata"].get("resourceVersion") != version or name in wanted
        # Changed since the mark: newer than the list, and replace() keeps it.
        if differs and not cache.changed_since(KIND, namespace, name, since):
            held = client.get(KIND, namespace, name)  # None: deleted meanwhile
            held = cache.trim(KIND, held) if held is not None else None
        if held is not None:
            items.append(held)
    return items
