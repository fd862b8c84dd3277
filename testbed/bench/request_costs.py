"""What one request of each kind the operator sends costs the API server, on an idle control plane.

    python -m testbed.bench.request_costs [--count 400]

A fresh local control plane, no operator: ``--count`` requests of each kind from 8
threads, and the CPU seconds the API server, etcd and the controller-manager spent
meanwhile, per request. Explains where the operator phase of ``make bench`` spends
more than the floor (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import copy
import functools
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes

from modeldeploy.api.names import FIELD_MANAGER
from modeldeploy.api.spec import ModelDeployment, ModelDeploymentSpec
from modeldeploy.children.deployment import build_config_map, build_deployment
from modeldeploy.children.routing import build_service
from modeldeploy.control.kinds import BY_KIND
from modeldeploy.control.writes import Writes
from modeldeploy.kube.client import Kube, load_client_config
from testbed.bench.contract_floor import status
from testbed.bench.run import (
    GROUP,
    PLURAL,
    VERSION,
    cpu_seconds,
    create_namespace,
    settle,
    spec,
)
from testbed.cluster.localcluster import MODELDEPLOYMENT_CRD, LocalCluster

NAMESPACE = "costs"
CHILD_KINDS = ("ConfigMap", "Deployment", "Service")


def child(kind: str, name: str) -> dict[str, Any]:
    """One of a first rollout's children, from the operator's builders; no owner (none
    exists here) and no replicas, so the controller-manager makes no pods."""
    md = ModelDeployment(
        name=name,
        namespace=NAMESPACE,
        uid="00000000-0000-0000-0000-000000000000",
        generation=1,
        spec=ModelDeploymentSpec.model_validate(spec(1, 0)),
    )
    manifest = {
        "ConfigMap": lambda: build_config_map(md, 1),
        "Deployment": lambda: build_deployment(md, 1, 0, "stable"),
        "Service": lambda: build_service(md),
    }[kind]()
    manifest = copy.deepcopy(manifest)
    del manifest["metadata"]["ownerReferences"]
    return manifest


def measure(root: Path, count: int) -> list[tuple[str, dict[str, float]]]:
    cluster = LocalCluster(root, crds=(MODELDEPLOYMENT_CRD,))
    cluster.up()
    try:
        api = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
        pids = cluster.pids()
        core = kubernetes.client.CoreV1Api(api)
        custom = kubernetes.client.CustomObjectsApi(api)
        kube = Kube(load_client_config(4, str(cluster.kubeconfig)), BY_KIND)
        writes = Writes(kube)
        create_namespace(core, NAMESPACE)
        results: list[tuple[str, dict[str, float]]] = []

        def each(label: str, request: Callable[[int], object]) -> None:
            settle(pids)
            before = cpu_seconds(pids)
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(request, range(count)))
            after = cpu_seconds(pids)  # not cpu_delta: its rounding to 0.1s is too coarse here
            results.append((label, {k: (after[k] - before[k]) * 1000 / count for k in after if k != "bench"}))

        def md(i: int) -> dict[str, Any]:
            return {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ModelDeployment",
                "metadata": {"name": f"m{i}"},
                "spec": spec(1, 1),
            }

        apps = kubernetes.client.AppsV1Api(api)
        creators = {
            "ConfigMap": core.create_namespaced_config_map,
            "Deployment": apps.create_namespaced_deployment,
            "Service": core.create_namespaced_service,
        }

        def create(manifest: dict[str, Any]) -> object:
            return creators[manifest["kind"]](NAMESPACE, manifest, field_manager="modeldeploy")

        each(
            "ModelDeployment create",
            lambda i: custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, md(i)),
        )
        each(
            "ModelDeployment status patch",
            lambda i: writes.patch_status(NAMESPACE, f"m{i}", status("Progressing", 0)),
        )
        involved = custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, "m0")
        each("Event create", lambda i: writes.post_event(involved, "Normal", "Ready", "version 1 is ready"))

        def config_map(i: int) -> dict[str, Any]:
            return {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"c{i}", "namespace": NAMESPACE},
                "data": {"models.config": "x" * 300},
            }

        each("ConfigMap apply", lambda i: kube.apply(config_map(i), FIELD_MANAGER))
        # A first rollout's children, as the builders make them: server-side apply of an
        # object that does not exist yet, against a plain create of the same manifest.
        for kind in CHILD_KINDS:
            each(
                f"{kind} apply (new)",
                functools.partial(lambda k, i: kube.apply(child(k, f"a{i}"), FIELD_MANAGER), kind),
            )
            each(f"{kind} create", functools.partial(lambda k, i: create(child(k, f"p{i}")), kind))
        each(
            "label merge patch (ConfigMap)",
            lambda i: core.patch_namespaced_config_map(
                f"c{i}", NAMESPACE, {"metadata": {"labels": {"gate": "true"}}}
            ),
        )
        return results
    finally:
        cluster.down()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=400)
    args = parser.parse_args(argv)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="modeldeploy-costs-") as root:
        results = measure(Path(root), args.count)
    print(f"{'request':32} CPU ms per request: API server / etcd / controller-manager")
    for label, used in results:
        figures = (used["kube-apiserver"], used["etcd"], used["kube-controller-manager"])
        print(f"{label:32} " + " / ".join(f"{ms:5.2f}" for ms in figures))
    print(f"({args.count} of each from 8 threads; {time.monotonic() - start:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
