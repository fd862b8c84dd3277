"""`make bench`: how fast and how cheaply the operator converges, beside the floor, in one run.

    python -m testbed.bench.run --n 200 [--m 50] [--idle 60] [--replicas 1] [--out bench-results.json]

On a fresh local control plane (with an API audit log):
1. floor: the same children (ConfigMap, Deployment, Service per object) applied
   straight to the API server, timed until every Deployment is Available;
2. operator: N ModelDeployments applied at once, timed until every one is Ready
   (model-aware: the TF Serving-compatible model server answers on every pod IP);
3. API economy: the operator's own requests (its user in the audit log) by verb per
   object, status writes per object, and writes during ``--idle`` seconds after; and
   every client's requests about each phase's namespace while it ran, per object (the
   controller-manager's, kwok's, the benchmark's), which the API server's CPU follows;
4. footprint: the operator's peak RSS and CPU seconds;
5. canary reaction: M canaries with short steps, delay from a step falling due to
   its next weight being applied (the status write that carries it);
6. contract floor (``--no-contract-floor`` skips it): with the operator and the model
   servers stopped and the floor's namespace deleted, the operator's requests sent by a
   client that decides nothing (testbed/bench/contract_floor.py), timed until every
   ModelDeployment is Ready. It splits the ratio in two: operator/contract floor is the
   operator's own work, contract floor/floor the requests.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes

from modeldeploy.api.names import FIELD_MANAGER, GROUP, PLURAL, VERSION
from modeldeploy.api.spec import ModelDeployment, ModelDeploymentSpec
from modeldeploy.api.times import parse_time
from modeldeploy.children.deployment import build_config_map, build_deployment
from modeldeploy.children.routing import build_service
from modeldeploy.control.kinds import BY_KIND
from modeldeploy.kube.client import Kube, load_client_config
from modeldeploy.kube.transport import ApiClient
from testbed.bench import apiserver_profile, peer
from testbed.bench.contract_floor import WATCHES, ContractClient
from testbed.bench.measure import (
    WRITE_VERBS,
    Audit,
    ReadyWatch,
    cluster_requests,
    cpu_delta,
    cpu_seconds,
    matching,
    per_object_by_verb,
    proc_usage,
    reaction_summary,
    settle,
    timings,
)
from testbed.bench.peer import PeerSettings
from testbed.cluster.localcluster import MODELDEPLOYMENT_CRD, LocalCluster
from testbed.modelserver.store import NODE_PATH, make_store
from testbed.support.kube import create_namespace, kubectl_path, wait_namespace_deleted
from testbed.support.operator import OperatorProcess
from testbed.support.wait import wait_for

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class BenchOptions:
    n: int = 200
    m: int = 50  # of the N, this many use Canary, and their step reaction is timed
    idle: float = 60.0  # seconds watched for writes after convergence (first round only)
    replicas: int = 1
    workers: int = 32  # the operator's workers, the floor's threads, the contract client's
    profile_seconds: int = 0  # the API server's CPU profile over each phase's first seconds
    contract: bool = True  # the contract floor phase, after the operator's
    peer: bool = True  # Argo Rollouts doing the same work, between the floor and the operator
    peer_settings: PeerSettings = field(default_factory=PeerSettings)


CANARY_PAUSE_SECONDS = 3


def spec(version: int, replicas: int, canary: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"storageUri": f"file://{NODE_PATH}/mnist", "version": version},
        "replicas": replicas,
        "rollout": {"strategy": "Immediate"},
    }
    if canary:
        body["rollout"] = {
            "strategy": "Canary",
            "steps": [
                {"weight": 20, "pause": f"{CANARY_PAUSE_SECONDS}s"},
                {"weight": 50, "pause": f"{CANARY_PAUSE_SECONDS}s"},
            ],
        }
    return body


def run_floor(
    api: kubernetes.client.ApiClient,
    kubeconfig: Path,
    n: int,
    replicas: int,
    workers: int,
    namespace: str = "bench-floor",
    ready_timeout: float = 600.0,
) -> dict[str, Any]:
    """The same children the operator would make, applied directly by the operator's own
    client: the floor."""
    create_namespace(kubernetes.client.CoreV1Api(api), namespace)
    kube = Kube(load_client_config(workers, str(kubeconfig)), BY_KIND)
    watch = ReadyWatch(api, namespace, "deployment", n).start()
    start = time.monotonic()

    def apply_one(i: int) -> None:
        md = ModelDeployment(
            name=f"m{i}",
            namespace=namespace,
            uid="00000000-0000-0000-0000-000000000000",
            generation=1,
            spec=ModelDeploymentSpec.model_validate(spec(1, replicas)),
        )
        for manifest in (
            build_config_map(md, 1),
            build_deployment(md, 1, replicas, "stable"),
            build_service(md),
        ):
            manifest = copy.deepcopy(manifest)
            del manifest["metadata"]["ownerReferences"]  # no owner exists: the GC would collect them
            # The floor knows nothing of models: no readiness gate waits for the operator.
            manifest.get("spec", {}).get("template", {}).get("spec", {}).pop("readinessGates", None)
            kube.apply(manifest, FIELD_MANAGER)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(apply_one, range(n)))
    if not watch.finished.wait(ready_timeout):
        raise TimeoutError(f"floor: {len(watch.done_at)}/{n} Deployments available after {ready_timeout}s")
    return timings(watch, start)


CONTRACT_RATIOS = (
    "operator_over_contract",
    "operator_over_contract_cpu",
    "contract_over_floor",
    "contract_over_floor_cpu",
)


def run_contract_phase(
    api: kubernetes.client.ApiClient, cluster: LocalCluster, options: BenchOptions, names: list[str]
) -> dict[str, Any]:
    """The contract floor (testbed/bench/contract_floor.py): the operator's requests, sent by
    a client that decides nothing, timed like the operator phase until every one is Ready.

    The floor's namespace goes first, so this phase starts beside N objects (the
    operator's), as the operator phase started beside the floor's."""
    core = kubernetes.client.CoreV1Api(api)
    core.delete_namespace("bench-floor")
    wait_namespace_deleted(core, "bench-floor")
    pids = cluster.pids()  # the control plane; this process is counted as "bench"
    namespace = "bench-contract"
    create_namespace(core, namespace)
    api_client = load_client_config(options.workers, str(cluster.kubeconfig))
    # Its watches get their own connections, as the operator's do.
    kube = Kube(api_client, BY_KIND, watch_api=ApiClient(api_client.credentials, connections=len(WATCHES)))
    client = ContractClient(kube, namespace, options.replicas, options.workers).start()
    watch = ReadyWatch(api, namespace, "md", len(names)).start()
    audit = Audit(cluster.audit_log)
    settle(pids)
    cpu_before = cpu_seconds(pids)
    mark = audit.mark()
    start = time.monotonic()
    try:
        create_mds(api, namespace, names[: options.m], spec(1, options.replicas, canary=True))
        create_mds(api, namespace, names[options.m :], spec(1, options.replicas))
        wait_for(lambda: watch.finished.is_set() or bool(client.errors), 900, what="contract floor Ready")
    finally:
        client.stop()
    if client.errors:
        raise RuntimeError(f"contract floor: {client.errors[0]!r}")
    return {
        **timings(watch, start),
        "cpu_s": cpu_delta(cpu_before, cpu_seconds(pids)),
        "requests": cluster_requests(audit.namespace_requests(namespace, mark, audit.mark()), len(names)),
    }


PEER_RATIOS = (
    "operator_over_peer",
    "operator_over_peer_cpu",
    "operator_over_peer_cpu_controller",
    "operator_over_peer_requests",
    "operator_over_peer_own_requests",
    "operator_over_peer_rss",
)


def peer_ratios(results: dict[str, Any]) -> dict[str, float]:
    """The operator over Argo Rollouts doing the same work: wall; CPU seconds of every process
    but the model servers (the pods' own work, which Argo Rollouts' pods have none of); the
    controller's own CPU; requests per object from every client and from the controller; RSS."""

    def cpu(phase: str) -> float:
        return float(sum(v for k, v in results[phase]["cpu_s"].items() if k != "modelservers"))

    operator, argo = results["operator"], results["peer"]
    return {
        "operator_over_peer": operator["total_s"] / argo["total_s"],
        "operator_over_peer_cpu": cpu("operator") / cpu("peer"),
        "operator_over_peer_cpu_controller": operator["cpu_s"]["operator"] / argo["cpu_s"][peer.USER],
        "operator_over_peer_requests": operator["requests"]["per_object"] / argo["requests"]["per_object"],
        "operator_over_peer_own_requests": results["api"]["per_object_total"]
        / argo["own"]["per_object_total"],
        "operator_over_peer_rss": results["footprint"]["peak_rss_mib"] / argo["footprint"]["peak_rss_mib"],
    }


def contract_ratios(results: dict[str, Any]) -> dict[str, float]:
    """Operator over contract floor: what the operator's own work costs; contract floor over
    floor: what its requests cost. Wall and CPU-seconds, like the main ratio."""

    def cpu(phase: str) -> float:
        return float(sum(results[phase]["cpu_s"].values()))

    floor, operator, contract = results["floor"], results["operator"], results["contract"]
    return {
        "operator_over_contract": operator["total_s"] / contract["total_s"],
        "operator_over_contract_cpu": cpu("operator") / cpu("contract"),
        "contract_over_floor": contract["total_s"] / floor["total_s"],
        "contract_over_floor_cpu": cpu("contract") / cpu("floor"),
    }


def create_mds(
    api: kubernetes.client.ApiClient,
    namespace: str,
    names: list[str],
    body_spec: dict[str, Any],
    workers: int = 8,
) -> None:
    custom = kubernetes.client.CustomObjectsApi(api)

    def create(name: str) -> None:
        custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ModelDeployment",
                "metadata": {"name": name},
                "spec": body_spec,
            },
        )

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(create, names))


def start_process(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *args],
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def canary_reaction(api: kubernetes.client.ApiClient, namespace: str, names: list[str]) -> dict[str, Any]:
    """Patch M resources to a new version; per step, delay from due (start + pause) to the next write."""
    custom = kubernetes.client.CustomObjectsApi(api)
    by_step: dict[int, list[float]] = {}  # the step reached -> its delays
    seen: dict[str, int] = {}
    done: set[str] = set()
    finished = threading.Event()
    listed: set[str] = set()
    watching = threading.Event()

    def watch() -> None:
        stream = kubernetes.watch.Watch()
        for event in stream.stream(
            custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, timeout_seconds=300
        ):
            now = time.time()
            obj = event["object"]
            name = obj["metadata"]["name"]
            if name not in names:
                continue
            listed.add(name)
            if len(listed) == len(names):
                watching.set()  # the initial listing is in: the watch sees every later change
            status = obj.get("status") or {}
            canary = status.get("canary")
            previous = seen.get(name)
            if canary is not None and canary.get("step") is not None:
                step = int(canary["step"])
                if previous is not None and step == previous + 1 and previous_start.get(name):
                    due = parse_time(previous_start[name]).timestamp() + CANARY_PAUSE_SECONDS
                    by_step.setdefault(step, []).append(now - due)
                seen[name] = step
                if canary.get("stepStartedAt"):
                    previous_start[name] = canary["stepStartedAt"]
            if status.get("phase") == "Ready" and (status.get("stable") or {}).get("version") == 2:
                done.add(name)
                if len(done) == len(names):
                    finished.set()
                    stream.stop()

    previous_start: dict[str, str] = {}
    threading.Thread(target=watch, daemon=True).start()
    if not watching.wait(30):
        raise TimeoutError("canary reaction: the watch did not list the resources")
    for name in names:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"spec": {"model": {"version": 2}}}
        )
    if not finished.wait(300):
        raise TimeoutError(f"canary reaction: {len(done)}/{len(names)} promoted after 300s")
    return reaction_summary(len(names), by_step)


def canary_requests(audit: Audit, namespace: str, start: int, m: int) -> dict[str, Any]:
    """What the M canary rollouts made the cluster answer, per rollout: every client's
    requests about the namespace (the other resources are idle), and the operator's status
    writes, Events and model gate patches."""
    end = audit.settled()
    operator = audit.operator_requests(start, end)

    def per_rollout(verb: str, resource: str, subresource: str | None = None) -> float:
        return round(len(matching(operator, verb, resource, subresource)) / m, 2)

    return {
        **cluster_requests(audit.namespace_requests(namespace, start, end), m),
        "operator_per_rollout": round(len(operator) / m, 2),
        "status_writes_per_rollout": per_rollout("patch", "modeldeployments", "status"),
        "events_per_rollout": per_rollout("create", "events"),
        "gate_patches_per_rollout": per_rollout("patch", "pods", "status"),
    }


def run_rounds(options: BenchOptions, rounds: int, root: Path) -> dict[str, Any]:
    """``rounds`` runs, each on a fresh control plane; the idle window and the canary
    reaction are measured in the first only. The ratio is reported per round and as
    their median: on a shared VM one run's floor moved by a third between runs."""
    done = [run(options, root / f"round-{i + 1}", first=i == 0) for i in range(rounds)]
    results = done[0]
    results["rounds"] = [
        {
            "floor": r["floor"],
            "operator": r["operator"],
            "ratio_total": r["ratio_total"],
            "cpu_ratio": r["cpu_ratio"],
            **{k: r[k] for k in ("contract", *CONTRACT_RATIOS, "peer", *PEER_RATIOS) if k in r},
        }
        for r in done
    ]
    for key in ("ratio_total", "cpu_ratio", *CONTRACT_RATIOS, *PEER_RATIOS):
        if key in results:
            results[f"{key.removesuffix('_total')}_median"] = statistics.median(r[key] for r in done)
    return results


def run(options: BenchOptions, root: Path, first: bool = True) -> dict[str, Any]:
    """One round on a fresh control plane: the floor, the operator, then the contract floor.
    The idle window and the canary reaction only when ``first``."""
    n, m, replicas, workers = options.n, options.m, options.replicas, options.workers
    idle = options.idle if first else 0.0
    peer_binary = peer.build_controller() if options.peer else None
    peer_crds = peer.crd_files() if options.peer else ()
    cluster = LocalCluster(root, crds=(MODELDEPLOYMENT_CRD, *peer_crds), peer_users=(peer.USER,))
    cluster.up()
    results: dict[str, Any] = {
        "n": n,
        "m": m,
        "replicas": replicas,
        "idle_s": idle,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    processes: list[subprocess.Popen[bytes]] = []
    operator: OperatorProcess | None = None
    try:
        api = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
        wait_node_ready(cluster)
        pids = cluster.pids()
        audit = Audit(cluster.audit_log)
        settle(pids)
        cpu_before = cpu_seconds(pids)
        profile = _profile(api, root / "apiserver-floor.pprof", options.profile_seconds)
        floor_mark = audit.mark()
        results["floor"] = run_floor(api, cluster.kubeconfig, n, replicas, workers)
        results["floor"]["cpu_s"] = cpu_delta(cpu_before, cpu_seconds(pids))
        floor_requests = audit.namespace_requests("bench-floor", floor_mark, audit.mark())
        results["floor"]["requests"] = cluster_requests(floor_requests, n)
        if profile is not None:
            results["floor"]["apiserver_profile"] = str(profile.join())
        names = [f"m{i}" for i in range(n)]
        canary_names = names[:m]
        if peer_binary is not None:
            peer_run = peer.PeerRun(
                binary=peer_binary,
                names=names,
                canary_names=canary_names if first else [],
                md_spec=spec(1, replicas, canary=True),
                workers=workers,
                idle=idle,
                settings=options.peer_settings,
            )
            results["peer"] = peer.run_peer_phase(api, cluster, peer_run, root)

        namespace = "bench-operator"
        core = kubernetes.client.CoreV1Api(api)
        create_namespace(core, namespace)
        # The model servers: one process for every pod, each pod loading the same small
        # SavedModel (loaded once: shared), REST only (the operator speaks no gRPC).
        processes.append(
            start_process(
                [
                    "-m",
                    "testbed.modelserver.fleet",
                    f"--kubeconfig={cluster.kubeconfig}",
                    f"--namespace={namespace}",
                    f"--node-path={NODE_PATH}={make_store(root / 'models-store')}",
                ],
                root / "modelservers.log",
            )
        )
        operator = OperatorProcess(
            cluster.operator_kubeconfig,
            root / "operator.log",
            namespace=namespace,
            env={"MODELDEPLOY_WORKERS": str(workers)},
        )
        operator.start()
        pids |= {"operator": operator.pid, "modelservers": processes[0].pid}
        mark = audit.mark()
        watch = ReadyWatch(api, namespace, "md", n).start()
        settle(pids)
        cpu_before = cpu_seconds(pids)
        profile = _profile(api, root / "apiserver-operator.pprof", options.profile_seconds)
        start = time.monotonic()
        create_mds(api, namespace, canary_names, spec(1, replicas, canary=True))
        create_mds(api, namespace, names[m:], spec(1, replicas))
        if not watch.finished.wait(900):
            raise TimeoutError(f"operator: {len(watch.done_at)}/{n} Ready after 900s")
        results["operator"] = {**timings(watch, start), "cpu_s": cpu_delta(cpu_before, cpu_seconds(pids))}
        if profile is not None:
            results["operator"]["apiserver_profile"] = str(profile.join())
        results["ratio_total"] = results["operator"]["total_s"] / results["floor"]["total_s"]
        # Steadier than the wall ratio on a saturated machine: the work each phase cost.
        results["cpu_ratio"] = sum(results["operator"]["cpu_s"].values()) / sum(
            results["floor"]["cpu_s"].values()
        )
        converged = audit.mark()
        results["operator"]["requests"] = cluster_requests(
            audit.namespace_requests(namespace, mark, converged), n
        )
        requests = audit.operator_requests(mark, converged)
        # Every request counts, the ones the server refused (a fenced status write's 409) among them.
        md_writes = matching(requests, "patch", "modeldeployments", "status")
        refused = [e for e in md_writes if e.get("responseStatus", {}).get("code", 0) >= 400]
        results["api"] = {
            "per_object_by_verb": per_object_by_verb(requests, n),
            "per_object_total": round(len(requests) / n, 2),
            "status_writes_per_object": round(len(md_writes) / n, 2),
            "refused_status_writes_per_object": round(len(refused) / n, 2),
            "gate_patches_per_object": round(len(matching(requests, "patch", "pods", "status")) / n, 2),
        }
        idle_start = audit.settled()
        time.sleep(idle)  # the idle window itself: what the operator writes while nothing changes
        idle_requests = audit.operator_requests(idle_start)
        results["api"]["idle_writes"] = sum(1 for e in idle_requests if e["verb"] in WRITE_VERBS)
        rss, cpu = proc_usage(operator.pid)
        results["footprint"] = {"peak_rss_mib": round(rss, 1), "cpu_seconds": round(cpu, 1)}
        if m and first:
            canary_mark = audit.mark()
            results["canary_reaction"] = canary_reaction(api, namespace, canary_names)
            # Until the last promotion's removals and status writes are answered.
            results["canary_reaction"]["requests"] = canary_requests(audit, namespace, canary_mark, m)
        if options.contract:
            # Alone on the machine, like the floor: the operator and the model servers go.
            operator.stop()
            stop_processes(processes)
            results["contract"] = run_contract_phase(api, cluster, options, names)
            results.update(contract_ratios(results))
        if options.peer:
            results.update(peer_ratios(results))
    finally:
        if operator is not None:
            operator.stop()
        stop_processes(processes)
        cluster.down()
    return results


def stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM, and SIGKILL after 20 s: the model servers with hundreds of pods take longer."""
    for proc in processes:
        proc.terminate()
    for proc in processes:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _profile(
    api: kubernetes.client.ApiClient, out: Path, seconds: int
) -> apiserver_profile.ApiServerProfile | None:
    """The API server's CPU profile over a phase's first ``seconds``, when asked for."""
    if not seconds:
        return None
    if not apiserver_profile.enabled():
        raise SystemExit("--profile-seconds needs MODELDEPLOY_APISERVER_PROFILING=1 (--profiling=true)")
    return apiserver_profile.ApiServerProfile(api, out, seconds).start()


def wait_node_ready(cluster: LocalCluster) -> None:
    subprocess.run(
        [
            str(kubectl_path()),
            f"--kubeconfig={cluster.kubeconfig}",
            "wait",
            "--for=condition=Ready",
            "node",
            "--all",
            "--timeout=60s",
        ],
        check=True,
        capture_output=True,
    )


@contextmanager
def fresh_control_plane(root: Path) -> Iterator[tuple[LocalCluster, kubernetes.client.ApiClient]]:
    """A new local control plane in ``root`` with the CRD installed and its node Ready, and a
    client of it; torn down afterwards, whatever happened."""
    cluster = LocalCluster(root, crds=(MODELDEPLOYMENT_CRD,))
    cluster.up()
    try:
        api = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
        wait_node_ready(cluster)
        yield cluster, api
    finally:
        cluster.down()


def table(results: dict[str, Any]) -> str:
    floor, op, api = results["floor"], results["operator"], results["api"]
    rows = [
        ("ModelDeployments (N)", f"{results['n']} x {results['replicas']} replica(s)"),
        (
            "floor: all Deployments Available",
            f"{floor['total_s']:.1f}s (p50 {floor['p50_s']:.1f}s, p99 {floor['p99_s']:.1f}s)",
        ),
        (
            "operator: all Ready (model-aware)",
            f"{op['total_s']:.1f}s (p50 {op['p50_s']:.1f}s, p99 {op['p99_s']:.1f}s)",
        ),
        ("ratio operator/floor (target <= 1.15 at N=200, 1.25 at N=1000)", f"{results['ratio_total']:.2f}"),
        ("CPU-seconds ratio operator/floor (same targets)", f"{results['cpu_ratio']:.2f}"),
    ]
    if "contract" in results:
        contract, r = results["contract"], results
        rows += [
            (
                "contract floor: the operator's requests, no operator",
                f"{contract['total_s']:.1f}s (p50 {contract['p50_s']:.1f}s, p99 {contract['p99_s']:.1f}s)",
            ),
            (
                "operator/contract floor: the operator's own work",
                f"{r['operator_over_contract']:.2f} (CPU-seconds {r['operator_over_contract_cpu']:.2f})",
            ),
            (
                "contract floor/floor: the requests",
                f"{r['contract_over_floor']:.2f} (CPU-seconds {r['contract_over_floor_cpu']:.2f})",
            ),
        ]
    if len(results.get("rounds", [])) > 1:
        rows.append(
            (
                f"ratio over {len(results['rounds'])} rounds: median",
                f"{results['ratio_median']:.2f} ("
                + ", ".join(
                    f"{r['ratio_total']:.2f} = {r['operator']['total_s']:.1f}s/{r['floor']['total_s']:.1f}s"
                    for r in results["rounds"]
                )
                + ")",
            )
        )
        rows.append(
            (
                f"CPU-seconds ratio over {len(results['rounds'])} rounds: median",
                f"{results['cpu_ratio_median']:.2f} ("
                + ", ".join(f"{r['cpu_ratio']:.2f}" for r in results["rounds"])
                + ")",
            )
        )
        for key, label in (
            ("operator_over_contract", "operator/contract floor"),
            ("contract_over_floor", "contract floor/floor"),
        ):
            if f"{key}_median" in results:
                rows.append(
                    (
                        f"{label} over {len(results['rounds'])} rounds: median",
                        f"{results[f'{key}_median']:.2f} wall, {results[f'{key}_cpu_median']:.2f} CPU ("
                        + ", ".join(f"{r[key]:.2f}/{r[f'{key}_cpu']:.2f}" for r in results["rounds"])
                        + ")",
                    )
                )
    rows.append(
        (
            "API requests per object, every client: floor / operator"
            + (" / contract floor" if "contract" in results else ""),
            " / ".join(
                f"{results[phase]['requests']['per_object']:.1f}"
                for phase in ("floor", "operator", "contract")
                if phase in results
            ),
        )
    )
    rows += [
        ("operator requests per object", f"{api['per_object_total']} {api['per_object_by_verb']}"),
        (
            "status writes per object (refused), gate patches",
            f"{api['status_writes_per_object']} ({api['refused_status_writes_per_object']}),"
            f" {api['gate_patches_per_object']}",
        ),
        (f"writes in {results['idle_s']:g}s idle (target 0)", f"{api['idle_writes']}"),
        (
            "operator peak RSS / CPU",
            f"{results['footprint']['peak_rss_mib']} MiB / {results['footprint']['cpu_seconds']} s",
        ),
    ]
    if "canary_reaction" in results:
        c = results["canary_reaction"]
        rows.append(
            (
                f"canary step reaction, M={c['m']} (target p99 < 250ms)",
                f"p50 {c['p50_s'] * 1000:.0f}ms, p99 {c['p99_s'] * 1000:.0f}ms, "
                f"max {c['max_s'] * 1000:.0f}ms over {c['transitions']} steps",
            )
        )
        if "requests" in c:
            q = c["requests"]
            rows.append(
                (
                    "per canary rollout: every client / operator; status writes, Events, gates",
                    f"{q['per_object']:.1f} / {q['operator_per_rollout']:.1f}; "
                    f"{q['status_writes_per_rollout']}, {q['events_per_rollout']}, "
                    f"{q['gate_patches_per_rollout']}",
                )
            )
    if "peer" in results:
        rows += peer_rows(results)
    for phase in ("floor", "peer", "operator", "contract"):
        if "cpu_s" in results.get(phase, {}):
            used = results[phase]["cpu_s"]
            rows.append(
                (
                    f"CPU seconds during {phase} run",
                    f"{sum(used.values()):.1f}: " + ", ".join(f"{k} {v}" for k, v in used.items()),
                )
            )
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def peer_rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    """Argo Rollouts beside the operator, each figure as peer, operator and their ratio."""
    argo, op, r = results["peer"], results["operator"], results
    rows = [
        (
            "peer: Argo Rollouts " + peer.version(),
            f"{argo['settings']}; its Healthy is pods Ready, ours waits for TF Serving's AVAILABLE",
        ),
        (
            "peer: all Healthy / operator: all Ready",
            f"{argo['total_s']:.1f}s / {op['total_s']:.1f}s: operator/peer {r['operator_over_peer']:.2f}",
        ),
        (
            "CPU-seconds operator/peer: every process but the model servers; the controller's",
            f"{r['operator_over_peer_cpu']:.2f}; {r['operator_over_peer_cpu_controller']:.2f}",
        ),
        (
            "requests per object, every client: peer / operator",
            f"{argo['requests']['per_object']:.1f} / {op['requests']['per_object']:.1f}"
            f" ({r['operator_over_peer_requests']:.2f})",
        ),
        (
            "the controller's own requests per object: peer / operator",
            f"{argo['own']['per_object_total']} / {r['api']['per_object_total']}"
            f" ({r['operator_over_peer_own_requests']:.2f}; without the model gate's pod patches"
            f" {r['api']['per_object_total'] - r['api']['gate_patches_per_object']:.2f});"
            f" peer {argo['own']['per_object_by_verb']}",
        ),
        (
            "controller peak RSS: peer / operator",
            f"{argo['footprint']['peak_rss_mib']} MiB / {r['footprint']['peak_rss_mib']} MiB"
            f" ({r['operator_over_peer_rss']:.2f})",
        ),
        (f"peer writes in {r['idle_s']:g}s idle", f"{argo['idle_writes']}"),
    ]
    if "canary_reaction" in argo and "canary_reaction" in r:
        theirs, ours = argo["canary_reaction"], r["canary_reaction"]
        rows.append(
            (
                "canary step reaction p50 / p99, from each step's own due time: peer; operator",
                f"{theirs['p50_s'] * 1000:.0f} / {theirs['p99_s'] * 1000:.0f}ms over {theirs['transitions']}"
                f" steps; {ours['p50_s'] * 1000:.0f} / {ours['p99_s'] * 1000:.0f}ms",
            )
        )
        if "requests" in theirs and "requests" in ours:
            rows.append(
                (
                    "per canary rollout, every client / controller: peer; operator",
                    f"{theirs['requests']['per_object']:.1f} / {theirs['requests']['own_per_rollout']:.1f}; "
                    f"{ours['requests']['per_object']:.1f} / {ours['requests']['operator_per_rollout']:.1f}",
                )
            )
    rounds = r.get("rounds", [])
    if len(rounds) > 1 and "operator_over_peer_median" in r:
        rows.append(
            (
                f"operator/peer over {len(rounds)} rounds: median wall, CPU, requests",
                f"{r['operator_over_peer_median']:.2f}, {r['operator_over_peer_cpu_median']:.2f}, "
                f"{r['operator_over_peer_requests_median']:.2f} ("
                + ", ".join(
                    f"{x['operator_over_peer']:.2f}/{x['operator_over_peer_cpu']:.2f}" for x in rounds
                )
                + ")",
            )
        )
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--m", type=int, default=50)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument(
        "--workers", type=int, default=32, help="the operator's workers and the floor's threads"
    )
    parser.add_argument("--rounds", type=int, default=1, help="fresh control plane per round; median ratio")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results.json")
    parser.add_argument("--keep", type=Path, default=None, help="keep logs and audit log in this folder")
    parser.add_argument(
        "--profile-seconds",
        type=int,
        default=0,
        help="with MODELDEPLOY_APISERVER_PROFILING=1 and --keep: the API server's CPU profile over "
        "each phase's first seconds (apiserver-floor.pprof, apiserver-operator.pprof)",
    )
    parser.add_argument(
        "--no-contract-floor",
        action="store_true",
        help="skip the third phase (the operator's requests sent by a client that decides nothing)",
    )
    parser.add_argument(
        "--no-peer",
        action="store_true",
        help="skip the peer phase (Argo Rollouts doing the operator's work, built from its Go module)",
    )
    args = parser.parse_args(argv)
    if args.profile_seconds and args.keep is None:
        parser.error("--profile-seconds needs --keep: the profiles are written there")
    options = BenchOptions(
        n=args.n,
        m=min(args.m, args.n),
        idle=args.idle,
        replicas=args.replicas,
        workers=args.workers,
        profile_seconds=args.profile_seconds,
        contract=not args.no_contract_floor,
        peer=not args.no_peer,
    )
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        results = run_rounds(options, args.rounds, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="modeldeploy-bench-") as root:
            results = run_rounds(options, args.rounds, Path(root))
    print(table(results))
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
