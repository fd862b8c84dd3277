"""How much one phase's identical work spreads on this machine, and whether a phase costs
more because the phases before it left their objects behind.

    python -m testbed.bench.floor_repeat [--n 200] [--rounds 4]

Per round, on a fresh control plane: the floor (testbed/bench/run.py) three times, in three
namespaces: A on the empty cluster, B beside A's N objects, then A and B deleted and C.
Prints wall and CPU seconds of each and the ratios B/A and C/A: identical work, so any
ratio away from 1 is the machine's noise or the order.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import kubernetes

from testbed.bench.run import (
    cpu_delta,
    cpu_seconds,
    fresh_control_plane,
    run_floor,
    settle,
)
from testbed.support.kube import wait_namespace_deleted

PHASES = ("A", "B", "C")


def one_round(root: Path, n: int, workers: int) -> dict[str, tuple[float, float]]:
    """(wall seconds, CPU seconds of every process) of floors A, B and C on one control plane."""
    with fresh_control_plane(root) as (cluster, api):
        core = kubernetes.client.CoreV1Api(api)
        pids = cluster.pids()
        results: dict[str, tuple[float, float]] = {}
        for phase in PHASES:
            if phase == "C":
                for gone in ("floor-a", "floor-b"):
                    core.delete_namespace(gone)
                for gone in ("floor-a", "floor-b"):
                    wait_namespace_deleted(core, gone)
            settle(pids)
            before = cpu_seconds(pids)
            floor = run_floor(api, cluster.kubeconfig, n, 1, workers, namespace=f"floor-{phase.lower()}")
            results[phase] = (floor["total_s"], sum(cpu_delta(before, cpu_seconds(pids)).values()))
        return results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--workers", type=int, default=32)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="modeldeploy-floors-") as tmp:
        rounds = [one_round(Path(tmp) / f"round-{i + 1}", args.n, args.workers) for i in range(args.rounds)]
    for i, r in enumerate(rounds, 1):
        print(f"round {i}: " + ", ".join(f"{p} {r[p][0]:.1f}s / {r[p][1]:.1f} CPU-s" for p in PHASES))
    for later in ("B", "C"):
        wall = [r[later][0] / r["A"][0] for r in rounds]
        cpu = [r[later][1] / r["A"][1] for r in rounds]
        print(
            f"{later}/A: wall median {statistics.median(wall):.2f} ({', '.join(f'{x:.2f}' for x in wall)}),"
            f" CPU median {statistics.median(cpu):.2f} ({', '.join(f'{x:.2f}' for x in cpu)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
