"""The price list of a first rollout's requests: what each part of the contract floor costs
the cluster over the children-only floor.

    python -m testbed.bench.contract_price [--n 200] [--rounds 5]

Per round, on one fresh control plane, five phases one after another, each in its own
namespace (the one before deleted first), each timed until its objects are done. Each adds
one part to the one before it in this list; the rounds run them in rotated order, so that
over five rounds each phase runs once in each position and the order's price (printed by
position) is not charged to any part:

- floor: the three children applied straight (testbed/bench/run.py's floor), until Available;
- resource: + the user's ModelDeployment create, the children owned by it, until Available;
- status: + the two status writes (Progressing once applied, Ready once available), until Ready;
- gate: + the model gate: readinessGates on the pods and the pod status patch that opens
  each (with the kubelet's Ready flip it sets off), until Ready;
- contract: + the Ready Event: the whole contract floor (testbed/bench/contract_floor.py).

The client is contract_floor's, so nothing decides and nothing asks a model. Prints each
phase over the floor, wall and CPU-seconds of every process, per round and as medians, and
each part's own step: at most what leaving that part out could win.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes

from modeldeploy.control.kinds import BY_KIND
from modeldeploy.kube.client import Kube, load_client_config
from modeldeploy.kube.transport import ApiClient
from testbed.bench.contract_floor import ContractClient
from testbed.bench.run import (
    Audit,
    ReadyWatch,
    cluster_requests,
    cpu_delta,
    cpu_seconds,
    create_mds,
    fresh_control_plane,
    run_floor,
    settle,
    spec,
    timings,
)
from testbed.cluster.localcluster import LocalCluster
from testbed.support.kube import create_namespace, wait_namespace_deleted
from testbed.support.wait import wait_for


@dataclass(frozen=True)
class Phase:
    name: str
    parts: tuple[str, ...] | None  # None: the floor (no ModelDeployment at all)
    adds: str  # what this phase adds to the one before, for the printout


PHASES = (
    Phase("floor", None, "the three children, no owner"),
    Phase("resource", (), "the user's create; children owned by it"),
    Phase("status", ("status",), "two status writes"),
    Phase("gate", ("status", "gate"), "the model gate (patch + the kubelet's Ready flip)"),
    Phase("contract", ("status", "gate", "event"), "the Ready Event"),
)
# As in `make bench`: of the N, this many carry a Canary spec (a larger body to create).
CANARY_SHARE = 0.25
PHASE_TIMEOUT_SECONDS = 900


def run_phase(
    api: kubernetes.client.ApiClient, cluster: LocalCluster, phase: Phase, n: int, workers: int
) -> dict[str, Any]:
    """One phase in its own namespace: wall seconds, CPU seconds by process, requests per object."""
    namespace = f"price-{phase.name}"
    pids = cluster.pids()  # the control plane and this process (the client runs in it)
    audit = Audit(cluster.audit_log)
    sent: dict[str, int] = {}
    if phase.parts is None:
        settle(pids)
        before, mark = cpu_seconds(pids), audit.mark()
        result = run_floor(api, cluster.kubeconfig, n, 1, workers, namespace=namespace)
    else:
        create_namespace(kubernetes.client.CoreV1Api(api), namespace)
        api_client = load_client_config(workers, str(cluster.kubeconfig))
        kube = Kube(api_client, BY_KIND, watch_api=ApiClient(api_client.credentials, connections=3))
        client = ContractClient(kube, namespace, 1, workers, phase.parts).start()
        done = "md" if "status" in phase.parts else "deployment"
        watch = ReadyWatch(api, namespace, done, n).start()
        names = [f"m{i}" for i in range(n)]
        canaries = round(n * CANARY_SHARE)
        settle(pids)
        before, mark = cpu_seconds(pids), audit.mark()
        start = time.monotonic()
        try:
            create_mds(api, namespace, names[:canaries], spec(1, 1, canary=True))
            create_mds(api, namespace, names[canaries:], spec(1, 1))
            wait_for(
                lambda: watch.finished.is_set() or bool(client.errors),
                PHASE_TIMEOUT_SECONDS,
                what=f"{phase.name}: every object done",
            )
        finally:
            client.stop()
        if client.errors:
            raise RuntimeError(f"{phase.name}: {client.errors[0]!r}")
        result, sent = timings(watch, start), dict(client.sent)
    by_process = cpu_delta(before, cpu_seconds(pids))
    return {
        "sent": sent,
        "wall_s": result["total_s"],
        "cpu_s": sum(by_process.values()),
        "cpu_by_process": by_process,
        "requests": cluster_requests(audit.namespace_requests(namespace, mark, audit.mark()), n),
    }


def delete_and_wait(core: kubernetes.client.CoreV1Api, namespace: str) -> None:
    core.delete_namespace(namespace)
    wait_namespace_deleted(core, namespace)


def rotated(index: int) -> tuple[Phase, ...]:
    """The phases of round ``index`` (from 0): PHASES rotated by it, so that over five rounds
    each phase runs once in each position. A phase that runs later in its round costs more,
    so in a fixed order a part's step would carry the order's price as well as its own."""
    shift = index % len(PHASES)
    return PHASES[shift:] + PHASES[:shift]


def one_round(
    root: Path, n: int, workers: int, alone: bool = True, order: tuple[Phase, ...] = PHASES
) -> dict[str, dict[str, Any]]:
    """The five phases on one fresh control plane, in ``order``. ``alone``: each phase's
    namespace is deleted before the next starts (the namespace controller waits out the pods'
    30 s grace period, so that is half a minute each); the smoke test runs them side by side."""
    with fresh_control_plane(root) as (cluster, api):
        core = kubernetes.client.CoreV1Api(api)
        results: dict[str, dict[str, Any]] = {}
        previous: str | None = None
        for position, phase in enumerate(order):
            if alone and previous is not None:  # each phase alone on the cluster, as the floor was
                delete_and_wait(core, previous)
            results[phase.name] = {**run_phase(api, cluster, phase, n, workers), "position": position}
            previous = f"price-{phase.name}"
        return results


def ratios(rounds: list[dict[str, dict[str, Any]]], key: str) -> dict[str, list[float]]:
    """Each phase over the floor, per round."""
    return {p.name: [r[p.name][key] / r["floor"][key] for r in rounds] for p in PHASES}


def report(rounds: list[dict[str, dict[str, Any]]]) -> str:
    lines = []
    for i, r in enumerate(rounds, 1):
        lines.append(
            f"round {i}, in the order run: "
            + ", ".join(
                f"{name} {r[name]['wall_s']:.1f}s/{r[name]['cpu_s']:.1f} CPU-s"
                for name in sorted(r, key=lambda name: r[name].get("position", 0))
            )
        )
    wall, cpu = ratios(rounds, "wall_s"), ratios(rounds, "cpu_s")
    lines.append(
        f"{'phase':<9} {'adds':<50} {'wall/floor':>10} {'step':>6} {'CPU/floor':>10} {'step':>6}"
        f" {'req/obj':>8}"
    )
    before_wall = before_cpu = 1.0
    for p in PHASES:
        w, c = statistics.median(wall[p.name]), statistics.median(cpu[p.name])
        requests = statistics.median(r[p.name]["requests"]["per_object"] for r in rounds)
        lines.append(
            f"{p.name:<9} {p.adds:<50} {w:>10.2f} {w - before_wall:>+6.2f} {c:>10.2f} {c - before_cpu:>+6.2f}"
            f" {requests:>8.1f}"
        )
        before_wall, before_cpu = w, c
    spread = ", ".join(
        f"{p.name} {min(cpu[p.name]):.2f}-{max(cpu[p.name]):.2f}" for p in PHASES if p.parts is not None
    )
    lines.append(f"medians over {len(rounds)} round(s); CPU/floor by round: {spread}")
    lines.extend(added_requests(rounds))
    if len(rounds) > 1:
        lines.append(by_position(rounds))
    return "\n".join(lines)


def by_position(rounds: list[dict[str, dict[str, Any]]]) -> str:
    """The order's own price: per position in a round, the median over rounds of what the
    phase run there cost (CPU-s) over that phase's median in every position."""
    typical = {p.name: statistics.median(r[p.name]["cpu_s"] for r in rounds) for p in PHASES}
    positions: dict[int, list[float]] = {}
    for r in rounds:
        for name, phase in r.items():
            positions.setdefault(phase.get("position", 0), []).append(phase["cpu_s"] / typical[name])
    return "CPU-s by position in the round, over the phase's median: " + ", ".join(
        f"{k + 1}: {statistics.median(v):.2f}" for k, v in sorted(positions.items())
    )


def added_requests(rounds: list[dict[str, dict[str, Any]]], at_least: float = 0.3) -> list[str]:
    """Per part, the requests (client, verb, resource) whose count per object moved by at
    least ``at_least`` from the phase before (medians over rounds): what the part set off."""

    def median_count(phase: str, key: str) -> float:
        return statistics.median(r[phase]["requests"]["per_object_by_request"].get(key, 0.0) for r in rounds)

    lines = []
    for before, phase in itertools.pairwise(PHASES):
        keys = {
            k for r in rounds for p in (before, phase) for k in r[p.name]["requests"]["per_object_by_request"]
        }
        moved = {k: median_count(phase.name, k) - median_count(before.name, k) for k in sorted(keys)}
        shown = [
            f"{k} {d:+.2f}"
            for k, d in sorted(moved.items(), key=lambda kv: -abs(kv[1]))
            if abs(d) >= at_least
        ]
        lines.append(f"{phase.name} added, per object: " + ("; ".join(shown) or "nothing that moved"))
        steps = {
            name: statistics.median(
                r[phase.name]["cpu_by_process"].get(name, 0.0)
                - r[before.name]["cpu_by_process"].get(name, 0.0)
                for r in rounds
            )
            for name in rounds[0][phase.name]["cpu_by_process"]
        }
        lines.append(
            f"{phase.name} added, CPU-s by process: "
            + ", ".join(f"{k} {v:+.1f}" for k, v in sorted(steps.items(), key=lambda kv: -abs(kv[1])))
        )
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5, help="five: each phase once in each position")
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--out", type=Path, default=None, help="also write every round's figures as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="modeldeploy-price-") as tmp:
        rounds = [
            one_round(Path(tmp) / f"round-{i + 1}", args.n, args.workers, order=rotated(i))
            for i in range(args.rounds)
        ]
    print(report(rounds))
    if args.out is not None:
        args.out.write_text(json.dumps({"n": args.n, "rounds": rounds}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
