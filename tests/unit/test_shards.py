"""Shard placement and rendezvous assignment: stable across processes, minimal movement."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from modeldeploy.kube.shards import assigned_shards, shard_lease_name, shard_of, shard_owner

pytestmark = pytest.mark.timeout(60)
REPLICAS = ("replica-a", "replica-b", "replica-c")


def owners(replicas: tuple[str, ...], shard_count: int) -> dict[int, str | None]:
    return {shard: shard_owner(shard, replicas) for shard in range(shard_count)}


def test_shard_of_is_the_same_in_another_process() -> None:
    # Python's hash() is salted per process; the shard must not be.
    code = "from modeldeploy.kube.shards import shard_of; print(shard_of('team-a', 'resnet', 32))"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(child.stdout) == shard_of("team-a", "resnet", 32)


def test_shard_of_spreads_names_over_every_shard() -> None:
    counts = Counter(shard_of("ns", f"model-{i}", 8) for i in range(4000))
    assert set(counts) == set(range(8))
    assert min(counts.values()) > 400  # 500 expected per shard


def test_one_shard_holds_everything() -> None:
    assert {shard_of("ns", f"m-{i}", 1) for i in range(50)} == {0}
    assert shard_lease_name("modeldeploy-operator", 0, 1) == "modeldeploy-operator"
    assert shard_lease_name("modeldeploy-operator", 3, 32) == "modeldeploy-operator-shard-3"


@pytest.mark.parametrize("count", [0, -1])
def test_shard_count_below_one_is_refused_by_name(count: int) -> None:
    with pytest.raises(ValueError, match="shard_count"):
        shard_of("ns", "m", count)


def test_a_lone_replica_is_assigned_every_shard() -> None:
    assert assigned_shards("replica-a", [], 32) == frozenset(range(32))


def test_every_shard_has_exactly_one_owner_whatever_the_listing_order() -> None:
    forward = owners(REPLICAS, 32)
    assert forward == owners(tuple(reversed(REPLICAS)), 32)
    held = [assigned_shards(replica, REPLICAS, 32) for replica in REPLICAS]
    assert sorted(shard for shards in held for shard in shards) == list(range(32))
    assert all(shards for shards in held)  # 32 shards reach all three replicas


def test_a_joining_replica_takes_only_shards_it_now_owns() -> None:
    before = owners(REPLICAS, 64)
    after = owners((*REPLICAS, "replica-d"), 64)
    moved = {shard for shard in before if before[shard] != after[shard]}
    assert moved
    assert all(after[shard] == "replica-d" for shard in moved)


def test_a_leaving_replica_gives_up_only_its_own_shards() -> None:
    before = owners(REPLICAS, 64)
    after = owners(REPLICAS[:2], 64)
    moved = {shard for shard in before if before[shard] != after[shard]}
    assert moved == {shard for shard, owner in before.items() if owner == "replica-c"}


def test_no_live_replica_owns_nothing() -> None:
    assert shard_owner(0, []) is None
