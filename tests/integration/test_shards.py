"""Active/active replicas on the local control plane: three operator processes share the
shard Leases by rendezvous hashing; a killed one's shards, and its canaries, are taken over
and finished exactly once; a replica that joins moves only its shards; one stalled past its
lease lands no write; and the shipped rights are all a sharded replica needs."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.api.names import LABEL_NAME, LABEL_SHARD
from modeldeploy.api.times import parse_time
from modeldeploy.kube.shards import assigned_shards, shard_lease_name, shard_of
from testbed.cluster.localcluster import OPERATOR_USER
from testbed.modelserver.traffic import TrafficDriver
from testbed.support.wait import wait_for

from .conftest import REPO, Cluster, Operator, sample
from .test_canary import canary_sample
from .test_leader_election import WRITES, audit_entries
from .test_rbac import SA_NAMESPACE, service_account_kubeconfig

pytestmark = pytest.mark.timeout(240)
LEASE, SHARDS = "modeldeploy-operator", 6
# Short timings: a dead replica's leases expire within seconds.
TIMINGS = {
    "MODELDEPLOY_LEASE_DURATION_SECONDS": "2",
    "MODELDEPLOY_LEASE_RENEW_DEADLINE_SECONDS": "1.5",
    "MODELDEPLOY_LEASE_RETRY_PERIOD_SECONDS": "0.5",
}


def start_replicas(
    start_operator: Callable[..., Operator],
    namespace: str,
    names: list[str],
    kubeconfigs: dict[str, Path] | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Operator]:
    return {
        name: start_operator(
            kubeconfig=(kubeconfigs or {}).get(name),
            MODELDEPLOY_LEADER_ELECTION="true",
            MODELDEPLOY_SHARDS=str(SHARDS),
            MODELDEPLOY_LEASE_NAMESPACE=namespace,
            POD_NAME=name,
            **{**TIMINGS, **(env or {})},
        )
        for name in names
    }


def holders(cluster: Cluster, namespace: str, base: str = LEASE) -> dict[int, str]:
    """Each shard's holder as its Lease says (empty when unheld or not yet created)."""
    coordination = kubernetes.client.CoordinationV1Api(cluster.api)
    leases = {lease.metadata.name: lease for lease in coordination.list_namespaced_lease(namespace).items}
    found = {}
    for shard in range(SHARDS):
        held = leases.get(shard_lease_name(base, shard, SHARDS))
        found[shard] = str(held.spec.holder_identity or "") if held is not None else ""
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


# Canaries long enough to be caught mid-step, short enough to end in seconds.
STEPS = [{"weight": 20, "pause": "3s"}, {"weight": 50, "pause": "3s"}]
# With canaries running on a loaded machine, a 1.5 s renew deadline lapses often (each lapse
# makes a replica pass over its shards again): a little more room, still seconds to fail over.
ROOMIER = {"MODELDEPLOY_LEASE_DURATION_SECONDS": "4", "MODELDEPLOY_LEASE_RENEW_DEADLINE_SECONDS": "3"}


def names_held_by(namespace: str, replicas: list[str], owners: list[str], prefix: str = "m") -> list[str]:
    """For each of ``owners``, a ModelDeployment name whose shard that replica holds among
    ``replicas`` (the namespace is random, so the names are found, not fixed)."""
    owner_of = expected(replicas)
    found: list[str] = []
    for owner in owners:
        found.append(
            next(
                f"{prefix}{i}"
                for i in range(1000)
                if f"{prefix}{i}" not in found
                and owner_of[shard_of(namespace, f"{prefix}{i}", SHARDS)] == owner
            )
        )
    return found


@dataclass
class Canaries:
    """Reads the resources' statuses every 100 ms and records what must never happen: a
    canary step going back (a step repeated); and which steps each canary was seen at."""

    cluster: Cluster
    namespace: str
    names: list[str]
    problems: list[str] = field(default_factory=list)
    steps_seen: dict[str, set[int]] = field(default_factory=dict)
    _last: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Canaries:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            for name in self.names:
                try:
                    canary = (self.cluster.get_md(self.namespace, name).get("status") or {}).get("canary")
                except Exception:  # a read that failed is simply not recorded
                    continue
                if canary and canary["version"] == 2:
                    self.record(name, int(canary.get("step", 0)))

    def record(self, name: str, step: int) -> None:
        if step < self._last.get(name, 0):
            self.problems.append(f"{name}: canary went back from step {self._last[name]} to {step}")
        self._last[name] = max(step, self._last.get(name, 0))
        self.steps_seen.setdefault(name, set()).add(step)


def canaries_at_version_1(
    cluster: Cluster, namespace: str, names: list[str], traffic: Callable[..., TrafficDriver]
) -> None:
    for name in names:  # all created first: they start side by side
        body = canary_sample(name, steps=STEPS, progressDeadlineSeconds=120)
        body["spec"]["replicas"] = 1
        cluster.create_md(namespace, body)
    for name in names:
        cluster.wait_phase(namespace, name, "Ready")
        traffic(name=name, model=name, rps=20.0)


def cached(operator: Operator, kind: str) -> int:
    """How many objects of ``kind`` the replica's cache holds, as its /metrics says."""
    for family in text_string_to_metric_families(operator.metrics()):
        for point in family.samples:
            if point.name == "modeldeploy_cached_objects" and point.labels.get("kind") == kind:
                return int(point.value)
    return 0


def reported(operator: Operator) -> set[str]:
    """The resources whose phase the replica reports: those it holds whole in its cache."""
    return {
        point.labels["name"]
        for family in text_string_to_metric_families(operator.metrics())
        for point in family.samples
        if point.name == "modeldeploy_phase"
    }


def wait_whole_only_where_held(running: dict[str, Operator], expected: dict[str, set[str]]) -> None:
    """Each replica holds whole (and reports) only the resources of its own shards."""
    wait_for(
        lambda: {name: reported(op) for name, op in running.items()} == expected,
        60,
        what=f"resources held whole per replica {expected}",
    )


def wait_cached_deployments(running: dict[str, Operator], expected: dict[str, int]) -> None:
    """Each replica's cache holds the Deployments of its own shards' resources only."""
    wait_for(
        lambda: {name: cached(op, "Deployment") for name, op in running.items()} == expected,
        60,
        what=f"cached Deployments per replica {expected}",
    )


def assert_finished_exactly_once(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    md = cluster.wait_phase(namespace, name, "Ready", timeout=120)
    results = [(h["version"], h["result"]) for h in md["status"]["history"]]
    assert results.count((2, "Promoted")) == 1, (name, results)
    moves = [m for _, reason, m in cluster.events(namespace, name) if reason == "CanaryStep"]
    assert len(moves) == len(set(moves)), f"{name}: a canary step was taken twice: {moves}"
    return md


def test_a_killed_replicas_canaries_are_taken_over_and_finished_exactly_once(
    cluster: Cluster,
    namespace: str,
    start_operator: Callable[..., Operator],
    traffic: Callable[..., TrafficDriver],
) -> None:
    replicas = ["replica-a", "replica-b", "replica-c"]
    running = start_replicas(start_operator, namespace, replicas, env=ROOMIER)
    wait_for(lambda: holders(cluster, namespace) == expected(replicas), 60, what="the shards spread")
    names = names_held_by(namespace, replicas, replicas)  # one canary on each replica
    canaries_at_version_1(cluster, namespace, names, traffic)
    # Each replica watches its shards' children only: one Deployment each, not all three;
    # every replica still knows every ModelDeployment, but holds whole only its own.
    wait_cached_deployments(running, {name: 1 for name in replicas})
    assert all(cached(op, "ModelDeployment") == len(names) for op in running.values())
    wait_whole_only_where_held(
        running, {replica: {name} for replica, name in zip(replicas, names, strict=True)}
    )
    victim, orphan = replicas[0], names[0]
    with Canaries(cluster, namespace, names) as seen:
        for name in names:
            cluster.patch_md(namespace, name, {"spec": {"model": {"version": 2}}})
        wait_for(lambda: seen.steps_seen.get(orphan), 30, what=f"{orphan}'s canary under way")
        running[victim].stop(kill=True)
        finished = {name: assert_finished_exactly_once(cluster, namespace, name) for name in names}
    assert seen.problems == []
    for name in names:  # no step skipped: each was seen in the status
        assert seen.steps_seen[name] >= set(range(len(STEPS))), (name, seen.steps_seen)
    status = finished[orphan]["status"]
    heir = expected(replicas[1:])[status["shard"]]
    assert (status["shard"], status["shardHolder"]) == (shard_of(namespace, orphan, SHARDS), heir)
    taken = [m for _, reason, m in cluster.events(namespace, orphan) if reason == "ShardTakenOver"]
    assert taken == [f"replica {heir} took over shard {status['shard']} from replica {victim}"]
    # The dead replica's children came into its heir's cache with its shard, and its
    # resource whole; no one else's.
    survivors = {name: running[name] for name in replicas[1:]}
    wait_cached_deployments(survivors, {name: 2 if name == heir else 1 for name in survivors})
    wait_whole_only_where_held(
        survivors,
        {
            replica: {name, orphan} if replica == heir else {name}
            for replica, name in zip(replicas[1:], names[1:], strict=True)
        },
    )


def test_a_replica_that_joins_takes_its_shards_without_pausing_the_others(
    cluster: Cluster,
    namespace: str,
    start_operator: Callable[..., Operator],
    traffic: Callable[..., TrafficDriver],
) -> None:
    first, joining = ["replica-a", "replica-b"], "replica-c"
    start_replicas(start_operator, namespace, first, env=ROOMIER)
    wait_for(lambda: holders(cluster, namespace) == expected(first), 60, what="the shards spread over two")
    everyone = [*first, joining]
    moving = assigned_shards(joining, everyone, SHARDS)
    staying = {shard: owner for shard, owner in expected(first).items() if shard not in moving}
    # One canary on a shard that moves to the newcomer, one on a shard that stays.
    moved, kept = names_held_by(namespace, everyone, [joining, staying[min(staying)]])
    canaries_at_version_1(cluster, namespace, [moved, kept], traffic)
    changes: list[dict[int, str]] = []
    stop = threading.Event()

    def sample_holders() -> None:  # every 50 ms: a shard that stays must never change hands
        while not stop.wait(0.05):
            now = holders(cluster, namespace)
            if {shard: now[shard] for shard in staying} != staying:
                changes.append(now)

    sampler = threading.Thread(target=sample_holders, daemon=True)
    sampler.start()
    try:
        with Canaries(cluster, namespace, [moved, kept]) as seen:
            for name in (moved, kept):
                cluster.patch_md(namespace, name, {"spec": {"model": {"version": 2}}})
            wait_for(lambda: seen.steps_seen.get(moved), 30, what=f"{moved}'s canary under way")
            start_replicas(start_operator, namespace, [joining], env=ROOMIER)
            wait_for(
                lambda: holders(cluster, namespace) == expected(everyone), 30, what="the newcomer's shards"
            )
            finished = {
                name: assert_finished_exactly_once(cluster, namespace, name) for name in (moved, kept)
            }
    finally:
        stop.set()
        sampler.join(timeout=5)
    assert changes == [], f"a shard that stays changed hands: {changes[:3]}"
    assert seen.problems == []
    assert finished[moved]["status"]["shardHolder"] == joining
    assert finished[kept]["status"]["shardHolder"] == staying[min(staying)]


def test_children_made_under_one_shard_are_labelled_and_watched_after_scaling_out(
    cluster: Cluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    """An install going from one shard to several: the children its one replica made carry
    no shard label, which no shard selector sees. The replica holding the resource's shard
    sees them from its first pass and labels them (the pods roll once), the resource never
    seen without its children; then only that replica caches them. An HPA turned off
    meanwhile is one no pass applies again (so labels): it is still found, and deleted."""
    alone = start_operator(
        MODELDEPLOY_LEADER_ELECTION="true", MODELDEPLOY_LEASE_NAMESPACE=namespace, POD_NAME="alone", **TIMINGS
    )
    cluster.create_md(
        namespace, sample("mnist", replicas=None, autoscaling={"minReplicas": 1, "maxReplicas": 2})
    )
    cluster.wait_phase(namespace, "mnist", "Ready")
    autoscaling = kubernetes.client.AutoscalingV2Api(cluster.api)
    assert (
        LABEL_SHARD
        not in autoscaling.read_namespaced_horizontal_pod_autoscaler("mnist", namespace).metadata.labels
    )
    before = cluster.apps.read_namespaced_deployment("mnist-v1", namespace)
    assert LABEL_SHARD not in before.metadata.labels
    assert LABEL_SHARD not in before.spec.template.metadata.labels
    alone.stop()
    cluster.patch_md(namespace, "mnist", {"spec": {"autoscaling": None}})
    replicas = ["replica-a", "replica-b", "replica-c"]
    shard = str(shard_of(namespace, "mnist", SHARDS))
    heir = expected(replicas)[int(shard)]
    seen: list[tuple[str, int]] = []  # (phase, stable ready replicas) as the status said
    stop = threading.Event()

    def sample_status() -> None:  # every 100 ms
        while not stop.wait(0.1):
            status = cluster.get_md(namespace, "mnist").get("status") or {}
            seen.append(
                (str(status.get("phase")), int((status.get("stable") or {}).get("readyReplicas") or 0))
            )

    sampler = threading.Thread(target=sample_status, daemon=True)
    sampler.start()
    try:
        running = start_replicas(start_operator, namespace, replicas)

        def labelled() -> bool:
            deployment = cluster.apps.read_namespaced_deployment("mnist-v1", namespace)
            pods = cluster.core.list_namespaced_pod(namespace, label_selector=f"{LABEL_NAME}=mnist").items
            return (
                deployment.metadata.labels.get(LABEL_SHARD) == shard
                and deployment.spec.template.metadata.labels.get(LABEL_SHARD) == shard
                and LABEL_SHARD not in deployment.spec.selector.match_labels
                and bool(pods)
                and all((p.metadata.labels or {}).get(LABEL_SHARD) == shard for p in pods)
            )

        wait_for(labelled, 90, what=f"mnist's Deployment and pods labelled with shard {shard}")
        wait_for(
            lambda: not autoscaling.list_namespaced_horizontal_pod_autoscaler(namespace).items,
            60,
            what="the HPA made under one shard, turned off since, deleted",
        )
        cluster.wait_phase(namespace, "mnist", "Ready")
        wait_cached_deployments(running, {name: 1 if name == heir else 0 for name in replicas})
    finally:
        stop.set()
        sampler.join(timeout=5)
    # Progressing while its pods roll to labelled ones, as for any template change; never a
    # phase or a count that says its children went missing (Pending, Degraded, no pod ready).
    assert seen
    assert {phase for phase, _ in seen} <= {"Ready", "Progressing"}, sorted(set(seen))
    assert min(ready for _, ready in seen) >= 1, sorted(set(seen))


def shard_holder(cluster: Cluster, namespace: str, name: str) -> str:
    return str((cluster.get_md(namespace, name).get("status") or {}).get("shardHolder") or "")


def test_a_replica_stalled_past_its_lease_lands_no_write_until_it_holds_the_shard_again(
    cluster: Cluster,
    namespace: str,
    start_operator: Callable[..., Operator],
    traffic: Callable[..., TrafficDriver],
) -> None:
    assert cluster.local is not None, "reads the suite's own API server audit log"
    replicas = ["replica-a", "replica-b", "replica-c"]
    # Their own identities, so the audit log tells the stalled replica's requests apart.
    kubeconfigs = {
        "replica-a": cluster.local.operator_kubeconfig,
        "replica-b": cluster.local.standby_kubeconfig,
    }
    running = start_replicas(start_operator, namespace, replicas, kubeconfigs, env=ROOMIER)
    wait_for(lambda: holders(cluster, namespace) == expected(replicas), 60, what="the shards spread")
    (name,) = names_held_by(namespace, replicas, ["replica-a"])
    canaries_at_version_1(cluster, namespace, [name], traffic)
    cluster.patch_md(namespace, name, {"spec": {"model": {"version": 2}}})
    wait_for(lambda: (cluster.get_md(namespace, name).get("status") or {}).get("canary"), 30, what="a canary")
    shard = shard_of(namespace, name, SHARDS)
    process = running["replica-a"]
    os.kill(process.pid, signal.SIGSTOP)
    try:
        heir = wait_for(
            lambda: (
                shard_holder(cluster, namespace, name) not in ("", "replica-a")
                and shard_holder(cluster, namespace, name)
            ),
            30,
            what="another replica writing the stalled one's resource",
        )
    finally:
        woke_at = datetime.now().astimezone()
        os.kill(process.pid, signal.SIGCONT)
    assert_finished_exactly_once(cluster, namespace, name)
    # Woken, it counts itself live and wants its shard back: it may write again once it
    # holds the shard's Lease again (from the acquireTime it wrote there), never before.
    coordination = kubernetes.client.CoordinationV1Api(cluster.api)
    lease = coordination.read_namespaced_lease(shard_lease_name(LEASE, shard, SHARDS), namespace)
    assert lease.spec.holder_identity == "replica-a"
    retaken = lease.spec.acquire_time
    writes = [
        (
            parse_time(e["stageTimestamp"]),
            e["verb"],
            e["objectRef"].get("resource"),
            e["responseStatus"]["code"],
        )
        for e in audit_entries(cluster, woke_at)
        if e["user"]["username"] == OPERATOR_USER
        and e["verb"] in WRITES
        and e["objectRef"].get("namespace") == namespace
    ]
    early = [w for w in writes if w[0] < retaken]
    assert [w for w in early if w[3] < 300] == [], f"replica-a wrote before it held shard {shard} again"
    print(f"replica-a woken: {len(early)} write(s) before it held its shard again, all refused")
    assert heir in replicas[1:]


def test_sharded_replicas_need_only_the_shipped_rights(
    cluster: Cluster, namespace: str, start_operator: Callable[..., Operator], tmp_path: Path
) -> None:
    kubeconfig = service_account_kubeconfig(cluster, tmp_path / "sa-kubeconfig")
    cluster.kubectl("apply", "-f", str(REPO / "manifests" / "rbac-shards.yaml"))
    base = f"shards-{namespace}"  # Leases of its own in the shared operator namespace
    kubeconfigs = {"replica-a": kubeconfig, "replica-b": kubeconfig}
    running = start_replicas(
        start_operator,
        SA_NAMESPACE,
        ["replica-a", "replica-b"],
        kubeconfigs,
        {"MODELDEPLOY_LEASE_NAME": base},
    )
    try:
        wait_for(
            lambda: holders(cluster, SA_NAMESPACE, base) == expected(["replica-a", "replica-b"]),
            60,
            what="the shards spread under the ServiceAccount's rights",
        )
        cluster.create_md(namespace, sample("mnist", replicas=1))
        status = cluster.wait_phase(namespace, "mnist", "Ready")["status"]
        assert status["shard"] == shard_of(namespace, "mnist", SHARDS)
        assert status["shardHolder"] == expected(["replica-a", "replica-b"])[status["shard"]]
        for op in running.values():
            assert "Forbidden" not in op.log()
            assert " 403" not in op.log()
    finally:
        coordination = kubernetes.client.CoordinationV1Api(cluster.api)
        for lease in coordination.list_namespaced_lease(SA_NAMESPACE).items:
            if lease.metadata.name.startswith(base):
                coordination.delete_namespaced_lease(lease.metadata.name, SA_NAMESPACE)
