"""The running operator, built whole in one place (``build_operator``): every part is given
what it needs when it is constructed; ``Operator`` starts them, stops them, and runs a pass
for each key the work queue hands a worker."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..api.names import KIND
from ..kube.cache import ObjectCache, is_partial
from ..kube.client import Kube, load_client_config
from ..kube.congestion import AdaptiveBound
from ..kube.lease import LeaderElector, LeaseApi
from ..kube.shard_holder import LeaseCollection, ShardHolder
from ..kube.shards import shard_of
from ..kube.transport import ApiClient
from ..kube.workqueue import RetryLaterError, WorkQueue, run_workers
from ..probes.pretraffic import PreTrafficRunner
from ..probes.providers import DirectScrape
from . import operator_metrics
from .apply import Applier
from .kinds import BY_KIND, CHILD_WATCHES, new_cache
from .notice_delivery import Notifier
from .notices import load_config
from .pod_checks import PreTrafficGate
from .reconcile import Reconciler, unplaced
from .settings import Settings
from .sharding import Shards, pass_for
from .watches import (
    EventRouter,
    NamespaceWatches,
    confirm_and_queue_everything,
    keep_identity_of,
    queue_everything,
    relist,
    user_acted,
)
from .webhook_calls import WebhookCalls
from .writes import Writes

LOG = logging.getLogger(__name__)
# Pods whose pre-traffic checks run at once, over every resource.
PRE_TRAFFIC_THREADS = 4
# Webhook gate calls at once, over every resource; each is bounded by its gate's timeoutSeconds.
WEBHOOK_THREADS = 8


@dataclass(frozen=True)
class Operator:
    settings: Settings
    cache: ObjectCache
    queue: WorkQueue
    client: Kube
    reconciler: Reconciler
    router: EventRouter
    watches: NamespaceWatches
    # With leader election on: only the leader's workers reconcile.
    elector: LeaderElector | None
    stopping: threading.Event
    # With more than one shard (instead of the elector): each pass runs if its shard is held.
    shards: Shards | None = None

    def leading(self) -> bool:
        if self.shards is not None:
            return self.shards.held_count() > 0
        return self.elector is None or self.elector.is_leader()

    def leads(self, key: tuple[str, str]) -> bool:
        """Whether this replica runs the passes of ``key``: it leads, or holds its shard."""
        return self.shards.holds_key(key) if self.shards is not None else self.leading()

    def shards_held(self) -> int:
        if self.shards is not None:
            return self.shards.held_count()
        return 1 if self.leading() else 0

    def start(self) -> None:
        """Start every thread: the elector, /metrics, the workers, resync and relist."""
        ours = self.settings
        if self.elector is not None:
            self.elector.start()
        if self.shards is not None:
            self.shards.holder.start()
        operator_metrics.watch(self.cache, self.queue.ready, self.leading, self.shards_held)
        if ours.metrics_port:
            operator_metrics.serve(ours.metrics_address, ours.metrics_port, ours.metrics_path)
        run_workers(self.queue, self.handle, ours.workers)
        threading.Thread(target=self._resync_loop, name="resync", daemon=True).start()
        threading.Thread(target=self._relist_loop, name="relist", daemon=True).start()

    def stop(self) -> None:
        self.stopping.set()
        self.watches.stop()
        self.queue.close()
        if self.reconciler.notifier is not None:
            self.reconciler.notifier.close()
        self.reconciler.pre_traffic.close()
        self.reconciler.webhooks.close()
        if self.elector is not None:
            self.elector.release()
        if self.shards is not None:
            self.shards.holder.release()

    def on_model_deployment(self, type_: str | None, body: dict[str, Any]) -> None:
        """A ModelDeployment's watch event: cached, its namespace's children watched, and a
        pass queued. A person's edit or one-shot action (promote, abort, retry) goes first
        of all: an abort must not wait behind timers."""
        meta = body.get("metadata") or {}
        namespace = meta.get("namespace", "")
        acted = user_acted(self.cache.get(KIND, namespace, meta.get("name", "")), body)
        key = self.router.observe(KIND, type_, body)
        if namespace and type_ == "DELETED":
            self.watches.unwatch_if_empty(namespace)
        elif namespace:
            self.watches.watch(namespace)
        if key is not None:
            self.queue.add(key, first=acted)

    def handle(self, key: Any) -> float | None:
        """One pass for a worker; seconds until the resource wants another, if it does."""
        namespace, name = key
        if not self.leads(key):
            return None  # a standby: its watches keep the cache warm; the leader reconciles
        started = time.monotonic()
        result = "error"
        try:
            self.watches.fill(namespace)
            self._hold_whole(namespace, name)
            with pass_for((namespace, name)):
                again = self.reconciler.reconcile(namespace, name)
            result = "success"
            return again
        except RetryLaterError:
            result = "retry"
            raise
        finally:
            # The duration first: a scrape between the two then never counts a pass by
            # result that the histogram does not hold yet.
            operator_metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
            operator_metrics.RECONCILES.labels(result).inc()

    def _hold_whole(self, namespace: str, name: str) -> None:
        """Read the resource whole if the cache holds only its identity: an event trimmed
        while its shard was another replica's, stored after this one took it over."""
        if is_partial(self.cache.get(KIND, namespace, name)):
            body = self.client.get(KIND, namespace, name)
            if body is not None:  # None: deleted meanwhile; its watch event removes it
                self.cache.upsert(KIND, body)

    def _resync_loop(self) -> None:
        """Re-run every ModelDeployment now and then, its unwatched children checked: repairs
        drift no watch reports."""
        while not self.stopping.wait(self.settings.resync_seconds):
            self.reconciler.applier.recheck()
            queue_everything(self.cache, self.queue)

    def _relist_loop(self) -> None:
        """List the ModelDeployments again now and then. kopf re-watches after a gap (an API
        server restart, a 410) with a list that reports nothing for what was deleted
        meanwhile, and a ghost would keep being reconciled. The children need no relist:
        their reflectors resume their watches or list again."""
        first = True
        while not self.stopping.wait(self.settings.relist_seconds):
            if first:  # logged once the first round is due: the relist runs
                LOG.info("relisting ModelDeployments every %gs", self.settings.relist_seconds)
                first = False
            for namespace in self.watches.namespaces():
                try:
                    self.router.queue_owners(namespace, relist(self.client, self.cache, namespace))
                    self.watches.unwatch_if_empty(namespace)  # its last one went unreported
                except Exception:  # the API server may be down: the next round tries again
                    LOG.warning("relisting namespace %s failed", namespace, exc_info=True)


def build_operator(settings: Settings) -> Operator:
    """The whole operator, not started yet. Raises on a bad notifications file."""
    api = load_client_config(connections=settings.workers)
    # Watches hold a connection for minutes: given their own pool, they never take the workers'.
    client = Kube(api, BY_KIND, watch_api=ApiClient(api.credentials, connections=len(CHILD_WATCHES)))
    # With shards, a ModelDeployment of a shard this replica does not hold is cached as its
    # identity alone; the shards are built below, and the cache reaches them through this.
    holders: list[Shards] = []

    def keeps_whole(namespace: str, name: str) -> bool:
        return all(shards.holds_key((namespace, name)) for shards in holders)

    cache, stopping = new_cache(keeps_whole), threading.Event()
    # First passes at once: at most the setting, fewer while Service creates wait long.
    first_passes = AdaptiveBound(settings.first_pass_workers)
    queue = WorkQueue(normal_limit=first_passes)
    writes = Writes(client)
    # A replica that starts leading passes over every resource it has cached (what the old
    # leader left half done, what this one skipped while standing by), each confirmed first.
    taking_over = partial(confirm_and_queue_everything, client, cache, queue)
    elector = _elector(settings, client, on_started_leading=taking_over)
    # Off the holder's thread: relisting every namespace takes long, and the holder must
    # renew its shards meanwhile (a late renewal is a lapse, and the passes start over).
    confirming = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shards-taken")

    def shards_taken(shards: frozenset[int]) -> None:  # only their resources: not the others'
        taken = partial(_in_shards, shards, settings.shard_count)
        work = partial(confirm_and_queue_everything, client, cache, queue, taken)
        _in_background(confirming, work, "passing over the shards taken")

    def shards_lost(shards: frozenset[int]) -> None:
        given = partial(_in_shards, shards, settings.shard_count)
        _in_background(confirming, partial(keep_identity_of, cache, given), "trimming the shards handed over")

    # The children watched follow the shards held; the watches are built last (they need
    # the reconciler, which needs the shards), so the holder reaches them through this.
    built: list[NamespaceWatches] = []

    def shards_changed(held: frozenset[int]) -> None:
        for watches in built:
            watches.reselect(held)

    shards = _shards(settings, client, on_taken=shards_taken, on_lost=shards_lost, on_changed=shards_changed)
    leading = elector.is_leader if elector is not None else lambda: True
    if shards is not None:
        leading = shards.leading
        holders.append(shards)
    reconciler = Reconciler(
        writes,
        cache,
        Applier(client, cache, leading, service_timed=first_passes.observe),
        settings.build_options,
        clock=writes.now,
        pre_traffic=_pre_traffic(queue),
        leading=leading,
        notifier=_notifier(settings),
        prometheus_allowed=settings.prometheus_allowed,
        placement=shards.placement if shards is not None else unplaced,
        webhooks=_webhooks(settings, queue, writes.now),
    )
    router = EventRouter(cache, queue, reconciler.forget)
    # With shards, none held yet: no child is watched until the holder takes some.
    watches = NamespaceWatches(
        client, cache, router, stopping, settings.shard_count if shards is not None else 1
    )
    built.append(watches)
    return Operator(settings, cache, queue, client, reconciler, router, watches, elector, stopping, shards)


def _elector(
    settings: Settings, client: Kube, on_started_leading: Callable[[], None]
) -> LeaderElector | None:
    if not settings.leader_election or settings.shard_count > 1:
        return None
    lease = LeaseApi(
        client.raw, settings.lease_namespace, settings.lease_name, settings.renew_deadline_seconds
    )
    return LeaderElector(
        lease, settings.identity, settings.lease_timings, on_started_leading=on_started_leading
    )


def _in_shards(shards: frozenset[int], shard_count: int, key: tuple[str, str]) -> bool:
    return shard_of(*key, shard_count) in shards


def _in_background(executor: ThreadPoolExecutor, work: Callable[[], None], what: str) -> None:
    """``work`` on ``executor``'s one thread; errors are logged there, never raised here."""

    def logged() -> None:
        try:
            work()
        except Exception:
            LOG.warning("%s failed", what, exc_info=True)

    executor.submit(logged)


def _shards(
    settings: Settings,
    client: Kube,
    on_taken: Callable[[frozenset[int]], None],
    on_lost: Callable[[frozenset[int]], None],
    on_changed: Callable[[frozenset[int]], None],
) -> Shards | None:
    """More than one shard: a holder contends for this replica's share (kube/shard_holder.py)."""
    if not settings.leader_election or settings.shard_count == 1:
        return None
    leases = LeaseCollection(client.raw, settings.lease_namespace, settings.renew_deadline_seconds)
    holder = ShardHolder(
        leases,
        settings.lease_name,
        settings.identity,
        settings.shard_count,
        settings.lease_timings,
        on_taken=on_taken,
        on_lost=on_lost,
        on_changed=on_changed,
    )
    return Shards(holder)


def _pre_traffic(queue: WorkQueue) -> PreTrafficGate:
    """Pre-traffic checks on threads of their own: a pod's checks may take minutes (warm-up,
    golden requests), and the reconcile workers must stay free for every other resource.
    When a resource's checks end, its next pass reads them."""
    pool = ThreadPoolExecutor(max_workers=PRE_TRAFFIC_THREADS, thread_name_prefix="pre-traffic")
    runner = PreTrafficRunner(scrape=DirectScrape().scrape)
    return PreTrafficGate(runner, executor=pool, on_done=lambda namespace, name: queue.add((namespace, name)))


def _webhooks(settings: Settings, queue: WorkQueue, clock: Callable[[], str]) -> WebhookCalls:
    """Webhook gate calls on threads of their own: a gate may take its whole timeout (minutes),
    and the reconcile workers must stay free. When a call ends, the resource's next pass reads it."""
    pool = ThreadPoolExecutor(max_workers=WEBHOOK_THREADS, thread_name_prefix="webhook-gate")
    return WebhookCalls(
        settings.webhook_allowed,
        executor=pool,
        on_done=lambda namespace, name: queue.add((namespace, name)),
        clock=clock,
    )


def _notifier(settings: Settings) -> Notifier | None:
    """The admin's webhooks, if a notifications file is configured."""
    if not settings.notifications_config:
        return None
    config = load_config(settings.notifications_config)
    LOG.info("notifying %d webhook(s): %s", len(config.webhooks), ", ".join(w.name for w in config.webhooks))
    return Notifier(config)
