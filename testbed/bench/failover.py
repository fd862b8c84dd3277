"""`make bench` (failover part): how long a ModelDeployment goes unattended when the leader dies.

    python -m testbed.bench.failover [--kills 5] [--seed 16]

On a fresh local control plane, two operator replicas with leader election and the
default lease timings (``LeaseTimings()``, what the manifests ship) and one Ready
ModelDeployment. Per kill, at a random moment (so at a random point of the renewal
cycle): ``SIGKILL`` the leader, change the resource's spec at once, and time
- until the Lease names another replica (the election alone), and
- until the resource's ``status.observedGeneration`` shows the change: the first write
  of the new leader, what a user waits for.
A new replica replaces the killed one before the next kill. p50 and max over the kills.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import kubernetes

from modeldeploy.api.names import GROUP, PLURAL, VERSION
from modeldeploy.kube.lease import LeaseTimings
from testbed.cluster.localcluster import MODELDEPLOYMENT_CRD, LocalCluster
from testbed.modelserver.store import make_store
from testbed.support.kube import create_namespace
from testbed.support.operator import OperatorProcess
from testbed.support.wait import wait_for

from .run import NODE_PATH, spec, start_process, wait_node_ready

NAMESPACE = "bench-failover"
NAME = "m0"
LEASE = "modeldeploy-operator"


class Bench:
    def __init__(self, cluster: LocalCluster, root: Path) -> None:
        self.cluster, self.root = cluster, root
        api = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.leases = kubernetes.client.CoordinationV1Api(api)
        self.core = kubernetes.client.CoreV1Api(api)
        self.replicas: dict[str, OperatorProcess] = {}
        self.started = 0

    def start_replica(self) -> None:
        identity = f"replica-{self.started}"
        self.started += 1
        self.replicas[identity] = OperatorProcess(
            self.cluster.operator_kubeconfig,
            self.root / f"{identity}.log",
            namespace=NAMESPACE,
            env={
                "MODELDEPLOY_LEADER_ELECTION": "true",
                "MODELDEPLOY_LEASE_NAMESPACE": NAMESPACE,
                "POD_NAME": identity,
            },
        ).start()

    def live_holder(self) -> str:
        """The lease's holder when it is one of the running replicas, else ""."""
        holder = self.holder()
        return holder if holder in self.replicas else ""

    def holder(self) -> str:
        try:
            lease = self.leases.read_namespaced_lease(LEASE, NAMESPACE)
        except kubernetes.client.ApiException:
            return ""
        return str(lease.spec.holder_identity or "")

    def resource(self) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, NAME
        )
        return found

    def observed(self, generation: int) -> bool:
        status = self.resource().get("status") or {}
        return int(status.get("observedGeneration") or 0) >= generation

    def kill_once(self, rng: random.Random) -> tuple[float, float]:
        leader = wait_for(self.live_holder, 60, what="a leader")
        time.sleep(rng.uniform(0, 3))  # a random point of the leader's renewal cycle, on purpose
        self.replicas.pop(leader).stop(kill=True)
        killed_at = time.monotonic()
        replicas = 2 if self.resource()["spec"]["replicas"] == 1 else 1
        changed = self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, NAME, {"spec": {"replicas": replicas}}
        )
        generation = int(changed["metadata"]["generation"])
        elected = written = 0.0
        deadline = killed_at + 120
        while not written and time.monotonic() < deadline:
            now = time.monotonic()
            if not elected and self.holder() not in ("", leader):
                elected = now - killed_at
            if self.observed(generation):
                written = now - killed_at
            time.sleep(0.02)
        if not written:
            raise TimeoutError(f"no write by a new leader within 120 s of killing {leader}")
        self.start_replica()
        return elected or written, written


def run(kills: int, seed: int, root: Path) -> dict[str, list[float]]:
    cluster = LocalCluster(root, crds=(MODELDEPLOYMENT_CRD,))
    cluster.up()
    fleet: subprocess.Popen[bytes] | None = None
    bench = Bench(cluster, root)
    try:
        wait_node_ready(cluster)
        create_namespace(bench.core, NAMESPACE)
        fleet = start_process(
            [
                "-m",
                "testbed.modelserver.fleet",
                f"--kubeconfig={cluster.kubeconfig}",
                f"--namespace={NAMESPACE}",
                f"--node-path={NODE_PATH}={make_store(root / 'models-store')}",
            ],
            root / "modelservers.log",
        )
        bench.start_replica()
        bench.start_replica()
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "metadata": {"name": NAME}}
        bench.custom.create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, {**body, "spec": spec(1, 1)}
        )
        wait_for(lambda: (bench.resource().get("status") or {}).get("phase") == "Ready", 180, what="Ready")
        rng = random.Random(seed)
        results: dict[str, list[float]] = {"elected": [], "written": []}
        for _ in range(kills):
            elected, written = bench.kill_once(rng)
            results["elected"].append(elected)
            results["written"].append(written)
        return results
    finally:
        for replica in bench.replicas.values():
            replica.stop()
        if fleet is not None:
            fleet.terminate()
            fleet.wait(timeout=20)
        cluster.down()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="modeldeploy-failover-") as root:
        results = run(args.kills, args.seed, Path(root))
    timings = LeaseTimings()
    print(
        f"failover after SIGKILL of the leader, {args.kills} kills, default timings "
        f"(lease {timings.lease_duration:g} s, renew deadline {timings.renew_deadline:g} s, "
        f"retry {timings.retry_period:g} s; goal: first write under 15 s):"
    )
    for label, key in (("lease taken by a standby", "elected"), ("first write of the new leader", "written")):
        values = results[key]
        print(
            f"  {label:<32} p50 {statistics.median(values):5.2f} s  max {max(values):5.2f} s"
            f"  (all: {', '.join(f'{v:.2f}' for v in values)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
