"""What one relist of the ModelDeployments costs: a list of whole bodies against a list of
names and versions (what the operator sends), on an idle control plane.

    python -m testbed.bench.relist_cost [--n 1000] [--rounds 5]

N ModelDeployments with a Ready status the size the operator writes, then each kind of list
``--rounds`` x 10 times; per list, the CPU milliseconds of the API server and etcd, of this
process (the client: decoding and slimming, as the operator does), and the wall time.
Medians over the rounds, and the ratio names-and-versions / whole bodies.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import kubernetes

from modeldeploy.api.names import GROUP, KIND, PLURAL, VERSION
from modeldeploy.control.kinds import BY_KIND, slim
from modeldeploy.control.writes import Writes
from modeldeploy.kube.client import Kube, load_client_config
from testbed.bench.contract_floor import status
from testbed.bench.run import cpu_seconds, settle, spec
from testbed.cluster.localcluster import MODELDEPLOYMENT_CRD, LocalCluster
from testbed.support.kube import create_namespace

NAMESPACE = "relist"
LISTS_PER_ROUND = 10
FIGURES = ("kube-apiserver", "etcd", "client", "wall")

Costs = dict[str, float]  # figure -> milliseconds per list


def measure(root: Path, n: int, rounds: int) -> dict[str, list[Costs]]:
    """Per kind of list, one Costs per round."""
    cluster = LocalCluster(root, crds=(MODELDEPLOYMENT_CRD,))
    cluster.up()
    try:
        api = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
        custom = kubernetes.client.CustomObjectsApi(api)
        kube = Kube(load_client_config(8, str(cluster.kubeconfig)), BY_KIND)
        create_namespace(kubernetes.client.CoreV1Api(api), NAMESPACE)

        def make(i: int) -> None:
            body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": {"name": f"m{i}"}}
            body["spec"] = spec(1, 1)
            custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
            Writes(kube).patch_status(NAMESPACE, f"m{i}", status("Ready", 1))

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(make, range(n)))
        kind = BY_KIND[KIND]
        lists: dict[str, Callable[[], object]] = {
            "whole bodies": lambda: kube.list_with_version(kind, NAMESPACE, each=partial(slim, KIND)),
            "names and versions": lambda: kube.list_versions(kind, NAMESPACE),
        }
        assert len(kube.list_versions(kind, NAMESPACE)) == n
        pids = cluster.pids()
        results: dict[str, list[Costs]] = {label: [] for label in lists}
        for _ in range(rounds):
            for label, send in lists.items():  # alternating, so drift hits both alike
                settle(pids)
                before, client, wall = cpu_seconds(pids), time.process_time(), time.monotonic()
                for _ in range(LISTS_PER_ROUND):
                    send()
                after = cpu_seconds(pids)
                costs = {
                    k: (after[k] - before[k]) * 1000 / LISTS_PER_ROUND for k in ("kube-apiserver", "etcd")
                }
                costs["client"] = (time.process_time() - client) * 1000 / LISTS_PER_ROUND
                costs["wall"] = (time.monotonic() - wall) * 1000 / LISTS_PER_ROUND
                results[label].append(costs)
        return results
    finally:
        cluster.down()


def medians(rounds: list[Costs]) -> Costs:
    return {figure: statistics.median(r[figure] for r in rounds) for figure in FIGURES}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="modeldeploy-relist-") as root:
        results = measure(Path(root), args.n, args.rounds)
    print(f"one relist of {args.n} ModelDeployments, ms; median of {args.rounds} rounds (range)")
    print(f"{'list':20} " + " ".join(f"{figure:>22}" for figure in FIGURES))
    for label, rounds in results.items():
        cells = [
            f"{statistics.median(r[f] for r in rounds):7.1f} ({min(r[f] for r in rounds):5.1f}-"
            f"{max(r[f] for r in rounds):5.1f})"
            for f in FIGURES
        ]
        print(f"{label:20} " + " ".join(f"{cell:>22}" for cell in cells))
    whole, names = medians(results["whole bodies"]), medians(results["names and versions"])
    print(
        "names and versions / whole bodies: "
        + ", ".join(f"{f} {names[f] / whole[f]:.2f}" for f in FIGURES if whole[f] > 0)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
