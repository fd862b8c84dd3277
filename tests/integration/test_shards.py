"""Active/active replicas on the local control plane: three operator processes share the
shard Leases by rendezvous hashing, and a killed one's shards are held again by the others."""

from __future__ import annotations

import time
from collections.abc import Callable

import kubernetes
import pytest

from modeldeploy.kube.shards import assigned_shards, shard_lease_name
from testbed.support.wait import wait_for

from .conftest import Cluster, Operator

pytestmark = pytest.mark.timeout(180)
LEASE, SHARDS = "modeldeploy-operator", 6
# Short timings: a dead replica's leases expire within seconds.
TIMINGS = {
    "MODELDEPLOY_LEASE_DURATION_SECONDS": "2",
    "MODELDEPLOY_LEASE_RENEW_DEADLINE_SECONDS": "1.5",
    "MODELDEPLOY_LEASE_RETRY_PERIOD_SECONDS": "0.5",
}


def start_replicas(
    start_operator: Callable[..., Operator], namespace: str, names: list[str]
) -> dict[str, Operator]:
    return {
        name: start_operator(
            MODELDEPLOY_LEADER_ELECTION="true",
            MODELDEPLOY_SHARDS=str(SHARDS),
            MODELDEPLOY_LEASE_NAMESPACE=namespace,
            POD_NAME=name,
            **TIMINGS,
        )
        for name in names
    }


def holders(cluster: Cluster, namespace: str) -> dict[int, str]:
    """Each shard's holder as its Lease says (empty when unheld or not yet created)."""
    coordination = kubernetes.client.CoordinationV1Api(cluster.api)
    leases = {lease.metadata.name: lease for lease in coordination.list_namespaced_lease(namespace).items}
    found = {}
    for shard in range(SHARDS):
        lease = leases.get(shard_lease_name(LEASE, shard, SHARDS))
        found[shard] = str(lease.spec.holder_identity or "") if lease is not None else ""
    return found


def expected(names: list[str]) -> dict[int, str]:
    return {shard: name for name in names for shard in assigned_shards(name, names, SHARDS)}


def test_three_replicas_spread_the_shards_and_a_killed_ones_are_taken_over(
    cluster: Cluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    names = ["replica-a", "replica-b", "replica-c"]
    running = start_replicas(start_operator, namespace, names)
    wait_for(
        lambda: holders(cluster, namespace) == expected(names), 60, what="the shards spread by rendezvous"
    )
    assert len(set(expected(names).values())) > 1  # more than one replica holds shards
    victim = next(name for name in names if name in expected(names).values())
    running.pop(victim).stop(kill=True)
    killed_at = time.monotonic()
    survivors = [name for name in names if name != victim]
    wait_for(
        lambda: holders(cluster, namespace) == expected(survivors),
        30,
        interval=0.1,
        what=f"{victim}'s shards held by the survivors",
    )
    taken_after = time.monotonic() - killed_at
    print(f"shards of a SIGKILLed replica held again after {taken_after:.1f}s")
    assert taken_after < 15


def test_one_replica_alone_holds_every_shard(
    cluster: Cluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    start_replicas(start_operator, namespace, ["replica-a"])
    wait_for(
        lambda: set(holders(cluster, namespace).values()) == {"replica-a"},
        60,
        what="every shard held by the one",
    )
