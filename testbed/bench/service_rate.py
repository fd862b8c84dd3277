"""How fast an idle API server creates Services, by clients at once and by Services present.

    python -m testbed.bench.service_rate [--count 400] [--clients 8 64] [--present 0 4500 9000]

A fresh local control plane, no operator. At each number of Services present (ClusterIP
Services made first to reach it), ``--count`` creates of each kind from each number of
clients at once, and their rate: a ClusterIP Service, a headless Service (no ClusterIP to
allocate) and a ConfigMap. Kubernetes allocates ClusterIPs one at a time, under a lock held
across a request of its own, so more clients do not make ClusterIP Services faster, and
each one present makes the next slower (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes

from testbed.bench.run import create_namespace
from testbed.cluster.localcluster import LocalCluster

NAMESPACE = "rate"
Row = tuple[int, int, dict[str, float]]  # Services present, clients, creates per second by kind
FILL_CLIENTS = 32


def service(name: str, headless: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"app": name}, "ports": [{"name": "grpc", "port": 8500}]}
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def config_map(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "x" * 300}}


class Creator:
    """Creates objects with unique names and counts the ClusterIP Services it made."""

    def __init__(self, core: Any) -> None:
        self.core = core
        self.names = itertools.count()
        self.cluster_ips = 0

    def make(self, kind: str) -> None:
        name = f"{kind}-{next(self.names)}"
        if kind == "configmap":
            self.core.create_namespaced_config_map(NAMESPACE, config_map(name))
            return
        self.core.create_namespaced_service(NAMESPACE, service(name, headless=kind == "headless"))

    def rate(self, kind: str, count: int, clients: int) -> float:
        """Creates per second, ``count`` of ``kind`` from ``clients`` threads."""
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            list(pool.map(lambda _: self.make(kind), range(count)))
        seconds = time.monotonic() - start
        if kind == "clusterip":
            self.cluster_ips += count  # counted here: ``make`` runs on many threads at once
        return count / seconds

    def fill_to(self, present: int) -> None:
        missing = max(0, present - self.cluster_ips)
        if missing:
            self.rate("clusterip", missing, FILL_CLIENTS)


def measure(root: Path, count: int, clients: list[int], presents: list[int]) -> list[Row]:
    cluster = LocalCluster(root)
    cluster.up()
    try:
        api = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
        core = kubernetes.client.CoreV1Api(api)
        create_namespace(core, NAMESPACE)
        creator = Creator(core)
        rows: list[Row] = []
        for present in sorted(presents):
            creator.fill_to(present)
            for at_once in clients:
                at_start = creator.cluster_ips
                rates: dict[str, float] = {}
                for kind in ("clusterip", "headless", "configmap"):
                    rates[kind] = creator.rate(kind, count, at_once)
                rows.append((at_start, at_once, rates))
                print_row(rows[-1])
        return rows
    finally:
        cluster.down()


def print_row(row: Row) -> None:
    present, at_once, rates = row
    figures = " / ".join(f"{rates[kind]:6.1f}" for kind in ("clusterip", "headless", "configmap"))
    print(f"{present:>16,} {at_once:>8} {figures}", flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--present", type=int, nargs="+", default=[0, 4500, 9000])
    args = parser.parse_args(argv)
    start = time.monotonic()
    heading = "creates per second: ClusterIP Service / headless / ConfigMap"
    print(f"{'Services present':>16} {'clients':>8} {heading}")
    with tempfile.TemporaryDirectory(prefix="modeldeploy-service-rate-") as root:
        measure(Path(root), args.count, args.clients, args.present)
    print(f"({args.count} of each; {time.monotonic() - start:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
