"""Shards held through their own Leases, on an in-memory Lease namespace that behaves like
the API server's (resourceVersion grows; a stale update gets 409) and a fake clock."""

from __future__ import annotations

import copy
import threading
from typing import Any

import pytest

from modeldeploy.control.sharding import Shards, ShardsUnhealthyError, pass_for
from modeldeploy.kube.lease import LeaseTimings
from modeldeploy.kube.shard_holder import ShardHolder
from modeldeploy.kube.shards import assigned_shards, shard_of
from modeldeploy.kube.transport import ApiError

pytestmark = pytest.mark.timeout(60)
TIMINGS = LeaseTimings(lease_duration=15, renew_deadline=10, retry_period=2)
BASE, SHARDS = "modeldeploy-operator", 16


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class MemoryLeases:
    """A namespace of Leases: ``named`` hands out one Lease's API, ``list`` them all."""

    def __init__(self) -> None:
        self.leases: dict[str, dict[str, Any]] = {}
        self.rv = 0
        self.lock = threading.RLock()  # a holder renews its shards' Leases from several threads

    def named(self, name: str) -> NamedLease:
        return NamedLease(self, name)

    def list(self) -> list[dict[str, Any]]:
        return copy.deepcopy(list(self.leases.values()))

    def store(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.rv += 1
            self.leases[name] = {
                "metadata": {"name": name, "resourceVersion": str(self.rv)},
                "spec": dict(spec),
            }
            return copy.deepcopy(self.leases[name])


class NamedLease:
    namespace = "modeldeploy-system"

    def __init__(self, namespace: MemoryLeases, name: str) -> None:
        self.all, self.name = namespace, name

    def get(self) -> dict[str, Any] | None:
        return copy.deepcopy(self.all.leases.get(self.name))

    def create(self, spec: dict[str, Any]) -> dict[str, Any]:
        with self.all.lock:
            if self.name in self.all.leases:
                raise ApiError(status=409, reason="AlreadyExists")
            return self.all.store(self.name, spec)

    def update(self, lease: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        with self.all.lock:
            if (
                lease["metadata"]["resourceVersion"]
                != self.all.leases[self.name]["metadata"]["resourceVersion"]
            ):
                raise ApiError(status=409, reason="Conflict")
            return self.all.store(self.name, spec)


def holder(
    leases: MemoryLeases, identity: str, clock: Clock, shards: int = SHARDS, **hooks: Any
) -> ShardHolder:
    return ShardHolder(leases, BASE, identity, shards, TIMINGS, clock=clock, **hooks)  # type: ignore[arg-type]


def rounds(clock: Clock, holders: list[ShardHolder], count: int = 4) -> None:
    """``count`` retry periods in which every replica in ``holders`` ticks once."""
    for _ in range(count):
        for replica in holders:
            replica.tick()
        clock.now += TIMINGS.retry_period


def identities(holders: list[ShardHolder]) -> list[str]:
    return [replica.identity for replica in holders]


def assert_partitioned(holders: list[ShardHolder]) -> None:
    live = identities(holders)
    for replica in holders:
        assert replica.held() == assigned_shards(replica.identity, live, SHARDS)
    assert sorted(s for replica in holders for s in replica.held()) == list(range(SHARDS))


def test_one_shard_is_todays_leader_lease_and_writes_no_heartbeat() -> None:
    leases, clock = MemoryLeases(), Clock()
    alone = holder(leases, "a", clock, shards=1)
    rounds(clock, [alone])
    assert alone.held() == frozenset({0})
    assert list(leases.leases) == [BASE]


def test_a_lone_replica_holds_every_shard() -> None:
    leases, clock = MemoryLeases(), Clock()
    alone = holder(leases, "a", clock)
    rounds(clock, [alone], 1)
    assert alone.held() == frozenset(range(SHARDS))


def test_three_replicas_split_the_shards_by_rendezvous() -> None:
    leases, clock = MemoryLeases(), Clock()
    replicas = [holder(leases, name, clock) for name in "abc"]
    rounds(clock, replicas)
    assert_partitioned(replicas)
    assert all(replica.held() for replica in replicas)


def test_a_dead_replicas_shards_are_taken_after_its_leases_expire_and_it_is_fenced() -> None:
    leases, clock = MemoryLeases(), Clock()
    a, b, c = (holder(leases, name, clock) for name in "abc")
    rounds(clock, [a, b, c])
    orphaned = c.held()
    rounds(clock, [a, b], 5)  # c stopped (SIGKILL or SIGSTOP): its leases not yet expired
    assert not (a.held() | b.held()) & orphaned
    assert not c.holds(min(orphaned))  # past its renew deadline c may not act for them
    stopped_at = clock.now - 5 * TIMINGS.retry_period
    while not orphaned <= a.held() | b.held():
        rounds(clock, [a, b], 1)
        # Held again within a lease duration and two retry periods of c's last renewal,
        # though a and b began contending for them only once c's heartbeat expired.
        assert clock.now - stopped_at <= TIMINGS.lease_duration + 2 * TIMINGS.retry_period
    assert_partitioned([a, b])


def test_a_joining_replica_moves_only_its_shards_and_the_others_keep_theirs_throughout() -> None:
    leases, clock = MemoryLeases(), Clock()
    a, b, c = (holder(leases, name, clock) for name in "abc")
    rounds(clock, [a, b])
    kept = {r.identity: r.held() - assigned_shards("c", "abc", SHARDS) for r in (a, b)}
    for _ in range(6):
        rounds(clock, [a, b, c], 1)
        assert all(kept[r.identity] <= r.held() for r in (a, b))  # no pause for shards that stay
    assert_partitioned([a, b, c])


def test_taken_and_lost_shards_are_reported_once_per_tick() -> None:
    leases, clock = MemoryLeases(), Clock()
    events: list[tuple[str, frozenset[int]]] = []
    a = holder(leases, "a", clock, on_taken=lambda s: events.append(("taken", s)))
    a.on_lost = lambda s: events.append(("lost", s))
    a.on_changed = lambda s: events.append(("held", s))
    rounds(clock, [a])
    # The held set first: the children's watches follow it before the passes are queued.
    assert events == [("held", frozenset(range(SHARDS))), ("taken", frozenset(range(SHARDS)))]
    events.clear()
    a.release()
    assert events == [("held", frozenset()), ("lost", frozenset(range(SHARDS)))]
    assert all(not lease["spec"]["holderIdentity"] for lease in leases.leases.values())


def test_a_clean_shutdown_hands_shards_over_within_a_retry_period() -> None:
    leases, clock = MemoryLeases(), Clock()
    a, b = holder(leases, "a", clock), holder(leases, "b", clock)
    rounds(clock, [a, b])
    a.release()
    rounds(clock, [b], 2)
    assert b.held() == frozenset(range(SHARDS))


def test_a_shard_count_below_one_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="shard_count"):
        holder(MemoryLeases(), "a", Clock(), shards=0)


def test_a_pass_may_write_only_while_its_resources_shard_is_held() -> None:
    leases, clock = MemoryLeases(), Clock()
    a, b = holder(leases, "a", clock), holder(leases, "b", clock)
    rounds(clock, [a, b])
    shards_a = Shards(a)
    mine = next(f"m-{i}" for i in range(100) if shard_of("ns", f"m-{i}", SHARDS) in a.held())
    theirs = next(f"m-{i}" for i in range(100) if shard_of("ns", f"m-{i}", SHARDS) in b.held())
    with pass_for(("ns", mine)):
        assert shards_a.leading()
    with pass_for(("ns", theirs)):
        assert not shards_a.leading()
    with pass_for(("ns", mine)):
        clock.now += TIMINGS.renew_deadline  # a stalls past its renew deadline
        assert not shards_a.leading()


class Unreachable(MemoryLeases):
    """The same Leases seen by a replica cut off from the API server whenever ``down``."""

    def __init__(self, leases: MemoryLeases) -> None:
        self.__dict__ = leases.__dict__  # one namespace of Leases, two views of it
        self.down = False

    def list(self) -> list[dict[str, Any]]:
        if self.down:
            raise ConnectionError("connection refused")
        return super().list()


def test_health_fails_only_for_shards_held_past_the_renew_deadline() -> None:
    leases, clock = MemoryLeases(), Clock()
    cut_off = Unreachable(leases)
    a, idle = holder(cut_off, "a", clock), holder(leases, "idle", clock, shards=1)
    rounds(clock, [holder(leases, "b", clock, shards=1)])  # the one-shard Lease is b's: idle holds nothing
    rounds(clock, [idle, a], 1)
    assert Shards(idle).health() == "idle: holds 0 of 1 shards"  # standing by is healthy
    assert Shards(a).health() == f"a: holds {SHARDS} of {SHARDS} shards"
    cut_off.down = True
    for _ in range(int(TIMINGS.renew_deadline / TIMINGS.retry_period) + 1):
        with pytest.raises(ConnectionError):
            a.tick()
        clock.now += TIMINGS.retry_period
    with pytest.raises(ShardsUnhealthyError, match="a holds shards it has not renewed in time"):
        Shards(a).health()
    cut_off.down = False
    rounds(clock, [a], 1)
    assert Shards(a).health() == f"a: holds {SHARDS} of {SHARDS} shards"


def test_a_shard_renewed_past_its_renew_deadline_counts_as_taken_again() -> None:
    leases, clock = MemoryLeases(), Clock()
    taken: list[frozenset[int]] = []
    a = holder(leases, "a", clock, on_taken=taken.append)
    rounds(clock, [a], 2)
    assert taken == [frozenset(range(SHARDS))]
    clock.now += TIMINGS.renew_deadline  # a stall: for a moment a held none, and skipped passes
    assert a.held() == frozenset()
    rounds(clock, [a], 1)
    assert taken[1:] == [frozenset(range(SHARDS))]  # owed: every pass over them runs again
    rounds(clock, [a], 2)
    assert len(taken) == 2  # renewed in time: nothing more


class BarrierLeases(MemoryLeases):
    """Shard Lease updates wait until ``parties`` of them are under way together."""

    def __init__(self) -> None:
        super().__init__()
        self.barrier: threading.Barrier | None = None

    def named(self, name: str) -> NamedLease:
        return BarrierLease(self, name)


class BarrierLease(NamedLease):
    all: BarrierLeases

    def update(self, lease: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        if self.all.barrier is not None and "-member-" not in self.name:
            self.all.barrier.wait()
        return super().update(lease, spec)


def test_a_holder_renews_its_shards_leases_at_once() -> None:
    """One after another, a slow API server's round trips add up past the renew deadline
    for the last shards; at once, a round takes about one round trip."""
    leases, clock = BarrierLeases(), Clock()
    replica = holder(leases, "replica-a", clock, shards=4)
    rounds(clock, [replica], 2)
    assert replica.held() == frozenset(range(4))
    versions = {name: lease["metadata"]["resourceVersion"] for name, lease in leases.leases.items()}
    leases.barrier = threading.Barrier(4, timeout=5)  # broken unless all four renew together
    replica.tick()
    renewed = {
        name
        for name, lease in leases.leases.items()
        if lease["metadata"]["resourceVersion"] != versions[name]
    }
    assert len(renewed - {name for name in renewed if "-member-" in name}) == 4
