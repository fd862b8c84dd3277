"""`make bench-scale`: many ModelDeployments on sharded operator replicas, beside the floor.

    python -m testbed.bench.scale --n 10000 --replicas 3 --shards 32 --canaries 20 [--idle 60]
        [--out bench-scale.json] [--keep DIR] [--no-floor]

On a fresh local control plane (API audit log; each replica logs in as its own user):
1. floor: N objects' children (ConfigMap, Deployment, Service, one pod each) applied
   straight (``run.run_floor``), timed until every Deployment is Available; then the floor's
   namespace is deleted, so the operator starts on an empty cluster as the floor did
   (``--no-floor`` leaves it out, and with it the ratio);
2. operator: R replicas over ``--shards`` shard Leases (the shipped lease timings), the
   shards spread first; N ModelDeployments (Immediate, one pod each, the TF Serving double
   serving every pod) timed until every one is Ready; every client's requests, and the
   replicas' requests and status writes, per object from the audit log;
3. C canaries (their own namespace, so their watches skip the N) created, Ready; then
   writes while idle (Leases aside: the audit policy leaves them out);
4. canary reaction: the C move to version 2 (``run.canary_reaction``) while the N sit idle;
5. kill (R > 1): the C move to version 3; once one of them, on the replica holding most of
   them, is under way, that replica is SIGKILLed; time until every shard it held has a
   new holder (from the Leases); every canary must still promote;
6. checks, PASS/FAIL with counts: no resource written by two replicas in the same second
   (audit log, successful writes); each canary's steps in order, none repeated or skipped
   (its status as one unbroken watch saw it, and its CanaryStep Events);
7. footprint: each replica's peak RSS and CPU, and the other processes' peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes

from modeldeploy.api.names import GROUP, PLURAL, VERSION
from modeldeploy.kube.lease import LeaseTimings
from modeldeploy.kube.shards import assigned_shards, shard_lease_name, shard_of
from testbed.cluster.localcluster import MODELDEPLOYMENT_CRD, LocalCluster, replica_user
from testbed.modelserver.store import NODE_PATH, make_store
from testbed.support.kube import create_namespace, wait_namespace_deleted
from testbed.support.operator import OperatorProcess
from testbed.support.wait import wait_for

from .run import (
    REPO,
    WRITE_VERBS,
    Audit,
    ReadyWatch,
    canary_reaction,
    cluster_requests,
    cpu_delta,
    cpu_seconds,
    create_mds,
    matching,
    proc_usage,
    run_floor,
    settle,
    spec,
    start_process,
    stop_processes,
    timings,
    wait_node_ready,
)

FLOOR, IDLE, CANARIES, LEASES = "bench-floor", "bench-scale", "bench-canaries", "modeldeploy-system"
LEASE = "modeldeploy-operator"
# The canary spec's steps (run.spec): status.canary.step goes 0, 1, 2 in every rollout.
STEP_COUNT = 2
READY_TIMEOUT = 7200.0  # ten thousand ClusterIP Services on two cores take over an hour


@dataclass(frozen=True)
class ScaleOptions:
    n: int = 10_000
    replicas: int = 3
    shards: int = 32
    canaries: int = 20
    idle: float = 60.0
    workers: int = 32  # each replica's workers, and the floor's threads
    # Without the floor a run measures everything but the ratio to it, in half the time:
    # at N=10,000 the floor alone takes more than an hour on two CPUs.
    floor: bool = True


def identity(index: int) -> str:
    return f"replica-{index}"


@dataclass
class Replicas:
    """R operator processes sharing the shards, each under its own API identity."""

    cluster: LocalCluster
    options: ScaleOptions
    root: Path
    running: dict[str, OperatorProcess] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)  # replica -> its API user

    def start(self) -> Replicas:
        for index in range(self.options.replicas):
            name = identity(index)
            self.users[name] = replica_user(index)
            self.running[name] = OperatorProcess(
                self.cluster.replica_kubeconfig(index),
                self.root / f"{name}.log",
                namespace=None,  # every namespace: the idle N and the canaries apart
                env={
                    "MODELDEPLOY_LEADER_ELECTION": "true",
                    "MODELDEPLOY_SHARDS": str(self.options.shards),
                    "MODELDEPLOY_LEASE_NAMESPACE": LEASES,
                    "MODELDEPLOY_WORKERS": str(self.options.workers),
                    "POD_NAME": name,
                },
            ).start()
        return self

    def pids(self) -> dict[str, int]:
        return {name: op.pid for name, op in self.running.items()}

    def expected(self, live: Iterable[str]) -> dict[int, str]:
        """Each shard's holder once ``live`` replicas have spread them by rendezvous hashing."""
        names = sorted(live)
        return {s: r for r in names for s in assigned_shards(r, names, self.options.shards)}

    def holders(self, api: kubernetes.client.ApiClient) -> dict[int, str]:
        """Each shard's holder as its Lease says (empty when unheld or not yet created)."""
        leases = kubernetes.client.CoordinationV1Api(api).list_namespaced_lease(LEASES).items
        by_name = {lease.metadata.name: str(lease.spec.holder_identity or "") for lease in leases}
        return {
            shard: by_name.get(shard_lease_name(LEASE, shard, self.options.shards), "")
            for shard in range(self.options.shards)
        }

    def footprint(self, name: str) -> dict[str, float]:
        rss, cpu = proc_usage(self.running[name].pid)
        return {"peak_rss_mib": round(rss, 1), "cpu_seconds": round(cpu, 1)}

    def stop(self) -> None:
        for op in self.running.values():
            op.stop()


@dataclass
class StepLog:
    """Every (version, step) each canary's status showed, in order, from one unbroken watch
    (resumed from its last resourceVersion), and each canary's Ready stable version."""

    api: kubernetes.client.ApiClient
    namespace: str
    names: list[str]
    steps: dict[str, list[tuple[int, int]]] = field(default_factory=lambda: defaultdict(list))
    stable: dict[str, int] = field(default_factory=dict)
    gaps: list[str] = field(default_factory=list)  # a watch that could not resume
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> StepLog:
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        custom = kubernetes.client.CustomObjectsApi(self.api)
        version: str | None = None
        while not self._stop.is_set():
            stream = kubernetes.watch.Watch()
            try:
                for event in stream.stream(
                    custom.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
                    resource_version=version,
                    timeout_seconds=30,
                ):
                    obj = event["object"]
                    version = obj["metadata"]["resourceVersion"]
                    self.record(obj)
            except kubernetes.client.ApiException as exc:
                self.gaps.append(f"watch ended: {exc.status} {exc.reason}")
                version = None  # a relist: steps between may be missed, so the gap is reported

    def record(self, obj: dict[str, Any]) -> None:
        name, status = obj["metadata"]["name"], obj.get("status") or {}
        canary = status.get("canary")
        if canary is not None and canary.get("step") is not None:
            seen = (int(canary["version"]), int(canary["step"]))
            if not self.steps[name] or self.steps[name][-1] != seen:
                self.steps[name].append(seen)
        stable = (status.get("stable") or {}).get("version")
        if status.get("phase") == "Ready" and stable is not None:
            self.stable[name] = int(stable)

    def under_way(self, names: Iterable[str], version: int) -> bool:
        """Whether one of ``names`` has passed a step of ``version``'s canary."""
        return any((version, 1) in self.steps.get(name, []) for name in names)

    def all_promoted(self, version: int) -> bool:
        return all(self.stable.get(name) == version for name in self.names)

    def problems(self, versions: Iterable[int]) -> list[str]:
        """Each canary's steps of each version, in order, none repeated or skipped."""
        expected = list(range(STEP_COUNT + 1))
        found = [f"the watch was broken: {gap}" for gap in self.gaps]
        for name in self.names:
            for version in versions:
                seen = [step for v, step in self.steps.get(name, []) if v == version]
                if seen != expected:
                    found.append(f"{name} v{version}: steps {seen}, expected {expected}")
        return found


def step_event_problems(api: kubernetes.client.ApiClient, names: list[str], versions: list[int]) -> list[str]:
    """Each canary's CanaryStep Events: every step move of every version posted exactly once."""
    events = kubernetes.client.CoreV1Api(api).list_namespaced_event(
        CANARIES, field_selector="reason=CanaryStep"
    )
    posted = Counter((e.involved_object.name, e.message) for e in events.items)
    found = [
        f"{name}: {message!r} posted {count} times" for (name, message), count in posted.items() if count > 1
    ]
    for name in names:
        for version in versions:
            for step in range(1, STEP_COUNT + 1):
                message = f"canary of version {version} moved to step {step + 1}"
                if (name, message) not in posted:
                    found.append(f"{name}: no Event {message!r}")
    return found


def double_writes(audit: Audit, start: int, end: int) -> dict[str, Any]:
    """From the audit log: objects two replicas wrote successfully, over the run and within
    one second. Each object (its status included) keyed by resource, namespace and name."""
    writers: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    per_second: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)
    for event in audit.answered(start, end):
        user = event.get("user", {}).get("username")
        if user not in audit.users or event.get("verb") not in WRITE_VERBS:
            continue
        if event.get("responseStatus", {}).get("code", 0) >= 300:
            continue  # refused (a fenced write's 409): nothing was written
        ref = event.get("objectRef") or {}
        key = (ref.get("resource", "?"), ref.get("namespace", ""), ref.get("name", ""))
        writers[key].add(user)
        per_second[(*key, event["stageTimestamp"][:19])].add(user)
    same_second = sorted("/".join(k) for k, users in per_second.items() if len(users) > 1)
    return {
        "objects_written": len(writers),
        "written_by_two_replicas": sum(1 for users in writers.values() if len(users) > 1),
        "same_second": len(same_second),
        "same_second_examples": same_second[:10],
    }


def replica_requests(audit: Audit, namespace: str, start: int, end: int, n: int) -> dict[str, Any]:
    """The replicas' requests about one namespace, per object: by verb, status writes, gates."""
    events = [
        e
        for e in audit.operator_requests(start, end)
        if (e.get("objectRef") or {}).get("namespace") == namespace
    ]
    by_verb = Counter(e["verb"] for e in events)
    by_user = Counter(e["user"]["username"] for e in events)
    status_writes = matching(events, "patch", "modeldeployments", "status")
    refused = [e for e in status_writes if e.get("responseStatus", {}).get("code", 0) >= 400]
    return {
        "per_object_total": round(len(events) / n, 2),
        "per_object_by_verb": {verb: round(count / n, 2) for verb, count in sorted(by_verb.items())},
        "per_object_by_user": {user: round(count / n, 2) for user, count in sorted(by_user.items())},
        "status_writes_per_object": round(len(status_writes) / n, 2),
        "refused_status_writes_per_object": round(len(refused) / n, 2),
        "gate_patches_per_object": round(len(matching(events, "patch", "pods", "status")) / n, 2),
    }


def check(label: str, problems: list[str], counted: str) -> dict[str, Any]:
    return {"label": label, "pass": not problems, "counted": counted, "problems": problems[:20]}


@dataclass
class Run:
    """One scale run on a fresh ``cluster``: each phase a method, results gathered as it goes."""

    cluster: LocalCluster
    api: kubernetes.client.ApiClient
    options: ScaleOptions
    root: Path
    results: dict[str, Any] = field(default_factory=dict)
    fleets: list[Any] = field(default_factory=list)  # the model servers' processes
    replicas: Replicas | None = None
    canary_names: list[str] = field(default_factory=list)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Times a phase's wall clock, for the estimate of a larger run."""
        start = time.monotonic()
        yield
        took = self.results.setdefault("wall_s", {})[name] = round(time.monotonic() - start, 1)
        print(f"{name}: {took}s", flush=True)  # a run of hours shows where it is

    def pids(self) -> dict[str, int]:
        pids = self.cluster.pids() | {f"modelservers-{i}": p.pid for i, p in enumerate(self.fleets)}
        return pids | (self.replicas.pids() if self.replicas else {})

    def floor(self) -> None:
        """The floor on an empty cluster, then its namespace deleted: the operator starts on
        an empty cluster too, and the node never holds both phases' pods."""
        n, core = self.options.n, kubernetes.client.CoreV1Api(self.api)
        audit, pids = Audit(self.cluster.audit_log), self.cluster.pids()
        with self.phase("floor"):
            settle(pids)
            before, mark = cpu_seconds(pids), audit.mark()
            floor = run_floor(
                self.api, self.cluster.kubeconfig, n, 1, self.options.workers, FLOOR, READY_TIMEOUT
            )
            floor["cpu_s"] = cpu_delta(before, cpu_seconds(pids))
            floor["requests"] = cluster_requests(audit.namespace_requests(FLOOR, mark, audit.mark()), n)
        self.results["floor"] = floor
        with self.phase("floor_deleted"):
            core.delete_namespace(FLOOR)
            wait_namespace_deleted(core, FLOOR, READY_TIMEOUT, 1.0)

    def start_operator(self) -> None:
        """The model servers, then the replicas, until the Leases show the shards spread."""
        core = kubernetes.client.CoreV1Api(self.api)
        for namespace in (IDLE, CANARIES, LEASES):
            create_namespace(core, namespace)
        store = make_store(self.root / "models-store")
        for namespace in (IDLE, CANARIES):
            args = ["-m", "testbed.modelserver.fleet", f"--kubeconfig={self.cluster.kubeconfig}"]
            args += [f"--namespace={namespace}", f"--node-path={NODE_PATH}={store}"]
            self.fleets.append(start_process(args, self.root / f"modelservers-{namespace}.log"))
        replicas = self.replicas = Replicas(self.cluster, self.options, self.root).start()
        wait_for(
            lambda: replicas.holders(self.api) == replicas.expected(replicas.running),
            120,
            what="the shards spread over the replicas",
        )

    def converge(self, audit: Audit) -> int:
        """N ModelDeployments until every one is Ready; the audit mark before them."""
        n, names = self.options.n, [f"m{i}" for i in range(self.options.n)]
        watch = ReadyWatch(self.api, IDLE, "md", n).start()
        pids = self.pids()
        settle(pids)
        before, mark = cpu_seconds(pids), audit.mark()
        with self.phase("operator"):
            start = time.monotonic()
            create_mds(self.api, IDLE, names, spec(1, 1))
            if not watch.finished.wait(READY_TIMEOUT):
                raise TimeoutError(f"operator: {len(watch.done_at)}/{n} Ready after {READY_TIMEOUT}s")
        converged = audit.mark()
        self.results["operator"] = {
            **timings(watch, start),
            "cpu_s": cpu_delta(before, cpu_seconds(pids)),
            "requests": cluster_requests(audit.namespace_requests(IDLE, mark, converged), n),
        }
        self.results["api"] = replica_requests(audit, IDLE, mark, converged, n)
        if "floor" in self.results:
            floor = self.results["floor"]
            self.results["ratio_total"] = self.results["operator"]["total_s"] / floor["total_s"]
            self.results["cpu_ratio"] = sum(self.results["operator"]["cpu_s"].values()) / sum(
                floor["cpu_s"].values()
            )
        return mark

    def canaries_ready(self) -> None:
        c = self.options.canaries
        self.canary_names = [f"c{i}" for i in range(c)]
        watch = ReadyWatch(self.api, CANARIES, "md", c).start()
        create_mds(self.api, CANARIES, self.canary_names, spec(1, 1, canary=True))
        if not watch.finished.wait(600):
            raise TimeoutError(f"canaries: {len(watch.done_at)}/{c} Ready after 600s")

    def idle(self, audit: Audit) -> None:
        start = audit.settled()
        time.sleep(self.options.idle)  # the idle window itself: what the replicas write meanwhile
        writes = [e for e in audit.operator_requests(start) if e["verb"] in WRITE_VERBS]
        self.results["idle_writes"] = len(writes)
        self.results["idle_writes_by_request"] = dict(
            Counter(request_text(e) for e in writes).most_common(10)
        )

    def kill(self, steps: StepLog) -> None:
        """The canaries to version 3; SIGKILL the replica holding most of them once one of
        its canaries is under way; time until each of its shards has a new holder."""
        replicas = self.replicas
        assert replicas is not None
        owner = replicas.expected(replicas.running)
        on = Counter(owner[shard_of(CANARIES, name, self.options.shards)] for name in self.canary_names)
        victim = on.most_common(1)[0][0] if on else identity(0)
        orphans = [
            n for n in self.canary_names if owner[shard_of(CANARIES, n, self.options.shards)] == victim
        ]
        custom = kubernetes.client.CustomObjectsApi(self.api)
        for name in self.canary_names:
            custom.patch_namespaced_custom_object(
                GROUP, VERSION, CANARIES, PLURAL, name, {"spec": {"model": {"version": 3}}}
            )
        wait_for(lambda: steps.under_way(orphans, 3), 300, 0.05, what=f"{victim}'s canaries under way")
        held = {shard for shard, holder in replicas.holders(self.api).items() if holder == victim}
        # Every replica's peak so far: the split of the work before a kill moves shards
        # (the heirs then hold, and cache, more).
        before = {name: replicas.footprint(name) for name in replicas.running}
        footprint = before[victim]  # its peak, read before it goes
        replicas.running[victim].stop(kill=True)
        killed_at = time.monotonic()
        survivors = set(replicas.running) - {victim}

        def taken() -> bool:
            now = replicas.holders(self.api)
            return all(now[shard] in survivors for shard in held)

        wait_for(taken, 120, 0.1, what=f"{victim}'s shards held again")
        self.results["kill"] = {
            "victim": victim,
            "victim_footprint": footprint,
            "footprints_before": before,
            "shards": sorted(held),
            "canaries_on_victim": len(orphans),
            "held_again_s": round(time.monotonic() - killed_at, 2),
            "lease_timings": vars(LeaseTimings()),
        }
        replicas.running.pop(victim)
        wait_for(lambda: steps.all_promoted(3), 600, what="every canary promoted to version 3")
        self.results["kill"]["all_promoted_s"] = round(time.monotonic() - killed_at, 1)

    def footprint(self) -> None:
        replicas = self.replicas
        assert replicas is not None
        found = {name: replicas.footprint(name) for name in replicas.running}
        if "kill" in self.results:
            found[self.results["kill"]["victim"]] = self.results["kill"]["victim_footprint"]
        self.results["replicas_footprint"] = dict(sorted(found.items()))
        others = self.cluster.pids() | {f"modelservers-{i}": p.pid for i, p in enumerate(self.fleets)}
        self.results["peak_rss_mib"] = {
            name: round(proc_usage(pid)[0], 1)
            for name, pid in others.items()
            if Path(f"/proc/{pid}").exists()
        }

    def stop(self) -> None:
        if self.replicas is not None:
            self.replicas.stop()
        stop_processes(self.fleets)


def request_text(event: dict[str, Any]) -> str:
    ref = event.get("objectRef") or {}
    return f"{event['user']['username']} {event['verb']} {ref.get('resource')}/{ref.get('subresource') or ''}"


def run(options: ScaleOptions, root: Path) -> dict[str, Any]:
    cluster = LocalCluster(
        root,
        crds=(MODELDEPLOYMENT_CRD,),
        replica_identities=options.replicas,
        max_pods=max(5000, 2 * (options.n + options.canaries)),
    )
    with_phase_start = time.monotonic()
    cluster.up()
    api = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
    bench = Run(cluster, api, options, root)
    bench.results.update(
        {
            "n": options.n,
            "replicas": options.replicas,
            "shards": options.shards,
            "canaries": options.canaries,
            "idle_s": options.idle,
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        }
    )
    try:
        wait_node_ready(cluster)
        bench.results["wall_s"] = {"cluster_up": round(time.monotonic() - with_phase_start, 1)}
        if options.floor:
            bench.floor()
        with bench.phase("replicas_started"):
            bench.start_operator()
        assert bench.replicas is not None
        audit = Audit(cluster.audit_log, users=bench.replicas.users.values())
        start = bench.converge(audit)
        with bench.phase("canaries_ready"):
            bench.canaries_ready()
        steps = StepLog(api, CANARIES, bench.canary_names).start()
        with bench.phase("idle"):
            bench.idle(audit)
        with bench.phase("canary_reaction"):
            bench.results["canary_reaction"] = canary_reaction(api, CANARIES, bench.canary_names)
        versions = [2]
        if options.replicas > 1:
            with bench.phase("kill"):
                bench.kill(steps)
            versions.append(3)
        steps.stop()
        bench.footprint()
        with bench.phase("checks"):
            bench.results["checks"] = checks(bench, audit, start, steps, versions)
    except BaseException:
        # What a run that fails after an hour has measured is kept beside its logs.
        (root / "results-so-far.json").write_text(json.dumps(bench.results, indent=2) + "\n")
        raise
    finally:
        bench.stop()
        cluster.down()
    return bench.results


def checks(bench: Run, audit: Audit, start: int, steps: StepLog, versions: list[int]) -> list[dict[str, Any]]:
    """The audit and canary checks, over the whole run of the replicas."""
    writes = double_writes(audit, start, audit.settled())
    bench.results["writes"] = writes
    names = bench.canary_names
    rollouts = f"{len(names)} canaries x {len(versions)} rollout(s)"
    return [
        check(
            "no object written by two replicas in the same second",
            writes["same_second_examples"],
            f"{writes['objects_written']} objects written, {writes['written_by_two_replicas']} by two "
            f"replicas over the run, {writes['same_second']} within one second",
        ),
        check("canary steps in order, none repeated or skipped (status)", steps.problems(versions), rollouts),
        check(
            "each step moved exactly once (CanaryStep Events)",
            step_event_problems(bench.api, names, versions),
            rollouts,
        ),
    ]


def table(results: dict[str, Any]) -> str:
    api = results["api"]
    rows = [
        (
            "ModelDeployments (N), replicas, shards",
            f"{results['n']} x 1 pod, {results['replicas']} replica(s), {results['shards']} shards",
        ),
        *floor_rows(results),
        ("replicas' requests per object", f"{api['per_object_total']} {api['per_object_by_verb']}"),
        ("... by replica", f"{api['per_object_by_user']}"),
        (
            "status writes per object (refused), gate patches",
            f"{api['status_writes_per_object']} ({api['refused_status_writes_per_object']}),"
            f" {api['gate_patches_per_object']}",
        ),
        (f"writes in {results['idle_s']:g}s idle, Leases aside (target 0)", f"{results['idle_writes']}"),
    ]
    for name, used in results["replicas_footprint"].items():
        rows.append((f"{name} peak RSS / CPU", f"{used['peak_rss_mib']} MiB / {used['cpu_seconds']} s"))
    if "kill" in results:
        before = results["kill"]["footprints_before"]
        peaks = ", ".join(f"{name} {used['peak_rss_mib']}" for name, used in sorted(before.items()))
        rows.append(("replicas' peak RSS before the kill (MiB)", peaks))
    rows.append(
        ("other processes' peak RSS (MiB)", ", ".join(f"{k} {v}" for k, v in results["peak_rss_mib"].items()))
    )
    c = results["canary_reaction"]
    rows.append(
        (
            f"canary step reaction, {c['m']} canaries beside N idle",
            f"p50 {c['p50_s'] * 1000:.0f}ms, p99 {c['p99_s'] * 1000:.0f}ms, "
            f"max {c['max_s'] * 1000:.0f}ms over {c['transitions']} steps",
        )
    )
    if "kill" in results:
        k = results["kill"]
        rows.append(
            (
                f"SIGKILL {k['victim']} ({len(k['shards'])} shards, {k['canaries_on_victim']} canaries)",
                f"shards held again after {k['held_again_s']:.1f}s; every canary promoted "
                f"{k['all_promoted_s']:.1f}s after the kill "
                f"(lease duration {k['lease_timings']['lease_duration']:g}s)",
            )
        )
    for item in results["checks"]:
        verdict = "PASS" if item["pass"] else "FAIL"
        rows.append((f"{verdict} {item['label']}", item["counted"] + _first(item["problems"])))
    rows.append(("wall seconds by phase", ", ".join(f"{k} {v}" for k, v in results["wall_s"].items())))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def floor_rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    """The operator beside the floor; without a floor, the operator alone."""
    op = results["operator"]
    if "floor" not in results:
        return [
            ("floor", "not run (--no-floor)"),
            ("operator: all Ready (model-aware)", _spread(op)),
            ("API requests per object, every client", f"{op['requests']['per_object']:.1f}"),
        ]
    floor = results["floor"]
    return [
        ("floor: all Deployments Available", _spread(floor)),
        ("operator: all Ready (model-aware)", _spread(op)),
        (
            "ratio operator/floor: wall, CPU-seconds",
            f"{results['ratio_total']:.2f}, {results['cpu_ratio']:.2f}",
        ),
        (
            "API requests per object, every client: floor / operator",
            f"{floor['requests']['per_object']:.1f} / {op['requests']['per_object']:.1f}",
        ),
    ]


def _spread(phase: dict[str, Any]) -> str:
    return f"{phase['total_s']:.1f}s (p50 {phase['p50_s']:.1f}s, p99 {phase['p99_s']:.1f}s)"


def _first(problems: list[str]) -> str:
    return f"; {len(problems)} problem(s), first: {problems[0]}" if problems else ""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--shards", type=int, default=32)
    parser.add_argument("--canaries", type=int, default=20)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=32, help="each replica's workers, the floor's threads")
    parser.add_argument("--out", type=Path, default=REPO / "bench-scale.json")
    parser.add_argument("--keep", type=Path, default=None, help="keep logs and the audit log in this folder")
    parser.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="skip the floor: every figure but the ratio to it",
    )
    args = parser.parse_args(argv)
    if args.replicas < 1 or args.canaries < 1:
        parser.error("--replicas and --canaries must be at least 1")
    options = ScaleOptions(
        args.n, args.replicas, args.shards, args.canaries, args.idle, args.workers, args.floor
    )
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        results = run(options, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="modeldeploy-scale-") as root:
            results = run(options, Path(root))
    print(table(results))
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    return 0 if all(item["pass"] for item in results["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
