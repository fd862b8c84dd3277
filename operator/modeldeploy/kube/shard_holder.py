"""Hold the shards rendezvous hashing gives this replica, each through its own Lease.

Every retry period a replica (``ShardHolder.tick``):

1. renews its heartbeat Lease (``<base>-member-<identity>``), announcing it is live;
2. lists the heartbeats and counts a replica live until its Lease has not changed for a
   lease duration, by this replica's own clock (as the elector judges a leader: no clock
   is compared with another node's);
3. releases the shards no longer assigned to it (a graceful hand-over: the new owner takes
   each within a retry period), and acquires or renews the ones that are, each with a
   ``LeaderElector`` on the shard's Lease, so holding a shard has the leader's fencing.

A dead replica's shards are taken once its heartbeat and shard Leases expire: about a
lease duration and a retry period. With one shard there is no heartbeat at all: every
replica contends for the single Lease, named as today's leader Lease, so a one-shard
install makes the same writes as leader election did.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .lease import LeaderElector, LeaseApi, LeaseTimings
from .shards import assigned_shards, shard_lease_name

LOG = logging.getLogger(__name__)
# Shard Leases renewed at once. One after another, a busy API server's round trips added up
# past the renew deadline for the last shards of a round: they lapsed, and every resource of
# theirs was passed over again, which made the API server busier still.
RENEWALS_AT_ONCE = 16


class LeaseCollection:
    """The Leases of one namespace: one ``LeaseApi`` per name, and the list of them all."""

    def __init__(self, call: Callable[..., Any], namespace: str, timeout: float | None = None) -> None:
        self._call, self.namespace, self.timeout = call, namespace, timeout

    def named(self, name: str) -> LeaseApi:
        return LeaseApi(self._call, self.namespace, name, timeout=self.timeout)

    def list(self) -> list[dict[str, Any]]:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"
        result = self._call("GET", path, timeout=self.timeout)
        return list(result.get("items") or [])


def member_lease_prefix(base: str) -> str:
    return f"{base}-member-"


@dataclass
class Members:
    """Which replicas are live, judged from their heartbeat Leases by the local clock."""

    prefix: str
    default_duration: float
    clock: Callable[[], float] = time.monotonic
    _seen: dict[str, tuple[str, float]] = field(default_factory=dict)  # name: (rv, since)

    def live(self, leases: Iterable[dict[str, Any]]) -> set[str]:
        now, found = self.clock(), set()
        for lease in leases:
            holder = self._live_holder(lease, now)
            if holder:
                found.add(holder)
        return found

    def _live_holder(self, lease: dict[str, Any], now: float) -> str:
        meta, spec = lease.get("metadata") or {}, lease.get("spec") or {}
        name, version = str(meta.get("name", "")), str(meta.get("resourceVersion", ""))
        holder = str(spec.get("holderIdentity") or "")
        if not name.startswith(self.prefix) or not holder:
            return ""  # not a heartbeat, or one released on a clean shutdown
        if self._seen.get(name, ("", 0.0))[0] != version:
            self._seen[name] = (version, now)
        duration = float(spec.get("leaseDurationSeconds") or self.default_duration)
        return holder if now - self._seen[name][1] < duration else ""


@dataclass
class ShardHolder:
    leases: LeaseCollection
    base: str
    identity: str
    shard_count: int
    timings: LeaseTimings = field(default_factory=LeaseTimings)
    # Called from the holder's thread after a tick that took / lost shards, once with them
    # all: a replica taking ten shards at once relists its resources once, not ten times.
    on_taken: Callable[[frozenset[int]], None] = lambda shards: None
    on_lost: Callable[[frozenset[int]], None] = lambda shards: None
    # Called first, with every shard now held, after a tick that changed them (the children
    # watched follow the held set, and must before the passes over the taken ones start).
    on_changed: Callable[[frozenset[int]], None] = lambda shards: None
    clock: Callable[[], float] = time.monotonic
    _electors: dict[int, LeaderElector] = field(default_factory=dict)
    _held: frozenset[int] = frozenset()
    _terms: dict[int, int] = field(default_factory=dict)  # each held shard's elector's terms
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        if self.shard_count < 1:
            raise ValueError(f"shard_count={self.shard_count} must be at least 1")
        prefix = member_lease_prefix(self.base)
        self._heartbeat = self._elector_on(f"{prefix}{self.identity}")
        self._members = Members(prefix, self.timings.lease_duration, self.clock)
        # One elector per shard for the holder's life: each keeps watching its Lease (from
        # the list) while another replica holds it, so it takes over on expiry at once.
        self._electors = {
            shard: self._elector_on(shard_lease_name(self.base, shard, self.shard_count))
            for shard in range(self.shard_count)
        }
        self._by_lease = {elector.api.name: elector for elector in self._electors.values()}
        self._renewals = ThreadPoolExecutor(
            max_workers=min(self.shard_count, RENEWALS_AT_ONCE), thread_name_prefix="shard-renew"
        )

    def holds(self, shard: int) -> bool:
        """Whether this replica may act for ``shard`` now (within its renew deadline)."""
        elector = self._electors.get(shard)
        return elector is not None and elector.is_leader()

    def held(self) -> frozenset[int]:
        return frozenset(shard for shard in self._electors if self.holds(shard))

    def healthy(self) -> bool:
        return all(elector.healthy() for elector in self._electors.values())

    def tick(self) -> None:
        wanted = self._wanted()
        for shard in sorted(self.held() - wanted):
            self._release(shard)
        self._contend_all(sorted(wanted))
        self._report(self.held())

    def _contend_all(self, shards: list[int]) -> None:
        """Acquire or renew every shard's Lease at once, and wait for them all."""
        if len(shards) == 1:
            self._contend(shards[0])
            return
        for _ in self._renewals.map(self._contend, shards):
            pass

    def _wanted(self) -> frozenset[int]:
        if self.shard_count == 1:
            return frozenset({0})  # no heartbeat needed: every replica contends for the one Lease
        self._heartbeat.try_acquire_or_renew()
        leases = self.leases.list()
        for lease in leases:
            elector = self._by_lease.get(str(lease.get("metadata", {}).get("name", "")))
            if elector is not None:
                elector.observe(lease)
        live = self._members.live(leases)
        return assigned_shards(self.identity, live, self.shard_count)

    def _contend(self, shard: int) -> None:
        try:
            self._electors[shard].try_acquire_or_renew()
        except Exception as exc:  # the API server may be down: the renew deadline decides
            LOG.warning("shards: could not reach the lease of shard %d: %s", shard, str(exc)[:200])

    def _release(self, shard: int) -> None:
        self._electors[shard].release()
        LOG.info("shards: %s handed shard %d over", self.identity, shard)

    def _report(self, now_held: frozenset[int]) -> None:
        before, self._held = self._held, now_held
        terms = {shard: self._electors[shard].terms for shard in now_held}
        # Held before and now, but renewed past the renew deadline: passes skipped meanwhile
        # (holds() was False) are owed, so the shard counts as taken again.
        lapsed = frozenset(shard for shard in before & now_held if terms[shard] != self._terms.get(shard))
        self._terms = terms
        if lapsed:
            LOG.info(
                "shards: %s renewed shard(s) %s late; passing over them again", self.identity, sorted(lapsed)
            )
        if before != now_held:
            self.on_changed(now_held)
        if before - now_held:
            self.on_lost(before - now_held)
        if (now_held - before) | lapsed:
            self.on_taken((now_held - before) | lapsed)

    def _elector_on(self, name: str) -> LeaderElector:
        return LeaderElector(self.leases.named(name), self.identity, self.timings, clock=self.clock)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="shard-holder", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        LOG.info("shards: %s contends for %d shard(s) of %s", self.identity, self.shard_count, self.base)
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # listing the heartbeats failed: try again next period
                LOG.warning("shards: could not reach the leases: %s", str(exc)[:200])
            self._stop.wait(self.timings.retry_period)

    def release(self) -> None:
        """On a clean shutdown: give every shard and the heartbeat up, so others take over at once."""
        self._stop.set()
        self._renewals.shutdown(wait=False, cancel_futures=True)
        for elector in self._electors.values():
            elector.release()  # nothing to do for a shard it does not lead
        if self.shard_count > 1:
            self._heartbeat.release()
        self._report(frozenset())
