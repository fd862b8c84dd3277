"""One model server process standing in for every simulated pod of a namespace, or of many.

    python -m testbed.modelserver.fleet --kubeconfig K --namespace NS [--control C] [--grpc]
    python -m testbed.modelserver.fleet --kubeconfig K --control-dir DIR


kwok runs no containers, so this does what the kubelet and the pod would: for each
running pod of a ModelDeployment it starts a model server on the pod's loopback IP,
from exactly the pod's serving command line, with the pod's ConfigMap as its config
folder and, for ``file://`` storage, the storage folder as the model folder the
fetcher would have filled. Each pod has its own load clock and counters; loaded
models are shared, so memory grows with the distinct models, not the pods.

``--node-path /models-store=DIR`` says where a ``file://`` path of the pods lives on
this machine (as a node's own folders would hold it). ``--control`` (JSON, read when
a pod starts) maps ``"<model>/<version>"`` or ``"*"`` to ``{"load_seconds": N}``: extra
time before the load starts, as a large model takes; and ``{"metrics": FAULT}``: a broken
metrics page (``nan``, ``garbage``, ``non_utf8``, ``drip``) for the operator's fault tests;
and ``{"predict_seconds": N}``: each prediction takes at least that long, as a heavy model's.

``--control-dir`` serves the pods of every namespace NS that has a file ``DIR/NS.json``
(the same table, plus ``"grpc": true`` to serve gRPC there too), so one process, with its
TensorFlow imported and its models loaded once, serves one test after another.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import kubernetes
import urllib3
from kubernetes.watch.watch import iter_resp_lines

from modeldeploy.api.names import (
    ANNOTATION_CONFIG_HASH,
    FETCHER_CONTAINER,
    LABEL_MANAGED_BY,
    LABEL_VERSION,
    MANAGED_BY,
    SERVING_CONTAINER,
)

from .flags import parse
from .process import ServingEndpoints
from .servable import Registry
from .server import ModelServer, PathMap

LOG = logging.getLogger("modelserver.fleet")
SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"


def control_table(control: Path | None) -> dict[str, Any]:
    try:
        table = json.loads(control.read_text()) if control else {}
    except (OSError, ValueError):
        return {}
    return table if isinstance(table, dict) else {}


def entry_of(table: dict[str, Any], model: str, version: int) -> dict[str, Any]:
    return dict(table.get(f"{model}/{version}") or table.get("*") or {})


def load_delay(control: Path | None, model: str, version: int) -> float:
    """Read when the load begins, not when the pod started: a test may slow a version late."""
    return float(entry_of(control_table(control), model, version).get("load_seconds", 0.0))


def _served(pod: dict[str, Any]) -> tuple[str, int] | None:
    """(model, version) of a modeldeploy pod, from its fetcher's arguments and labels."""
    version = (pod["metadata"].get("labels") or {}).get(LABEL_VERSION, "")
    for init in pod["spec"].get("initContainers") or []:
        if init["name"] == FETCHER_CONTAINER and version.isdigit():
            return init["args"][2].rstrip("/").rsplit("/", 1)[-1], int(version)
    return None


class Fleet:
    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        namespace: str | None,
        control: Path | None,
        grpc_enabled: bool,
        workdir: Path,
        node_paths: PathMap | None = None,
        control_dir: Path | None = None,
    ) -> None:
        self.core = kubernetes.client.CoreV1Api(api)
        self.namespace = namespace  # None: every namespace with a file in control_dir
        self.control = control
        self.control_dir = control_dir
        self.grpc_enabled = grpc_enabled
        self.workdir = workdir
        self.node_paths = node_paths or PathMap()
        self.registry = Registry()
        self.pods: dict[str, ServingEndpoints] = {}  # pod uid -> its server
        self._config_data: dict[tuple[str, str, str], dict[str, str]] = {}
        self.stopping = threading.Event()

    def _control(self, namespace: str) -> Path | None:
        """The control table of a namespace's pods (None: no faults, nothing slowed)."""
        return self.control_dir / f"{namespace}.json" if self.control_dir else self.control

    def _serves(self, namespace: str) -> bool:
        control = self._control(namespace)
        return self.control_dir is None or (control is not None and control.exists())

    def _config_map(self, namespace: str, name: str, config_hash: str) -> dict[str, str]:
        """A ConfigMap's data, read once per (namespace, name, the pod template's config hash)."""
        key = (namespace, name, config_hash)
        if key not in self._config_data:
            config_map = self.core.read_namespaced_config_map(name, namespace, _preload_content=False)
            self._config_data[key] = json.loads(config_map.data).get("data") or {}
        return self._config_data[key]

    def _paths(self, pod: dict[str, Any], serving: dict[str, Any]) -> PathMap | None:
        """Where the pod's mounts are on this machine: its config folder, its model folder."""
        spec = pod["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        mounts: list[tuple[str, Path]] = []
        for mount in serving.get("volumeMounts") or []:
            volume = volumes.get(mount["name"], {})
            if "configMap" in volume:
                annotations = pod["metadata"].get("annotations") or {}
                data = self._config_map(
                    pod["metadata"]["namespace"],
                    volume["configMap"]["name"],
                    annotations.get(ANNOTATION_CONFIG_HASH, ""),
                )
                folder = self.workdir / pod["metadata"]["uid"] / mount["name"]
                folder.mkdir(parents=True, exist_ok=True)
                for file_name, text in data.items():
                    (folder / file_name).write_text(text)
                mounts.append((mount["mountPath"], folder))
        for init in spec.get("initContainers") or []:
            if init["name"] == FETCHER_CONTAINER:
                uri, _version, model_dir = init["args"]
                parsed = urlparse(uri)
                if parsed.scheme != "file":
                    LOG.warning(
                        "pod %s/%s: %s storage is not served here",
                        pod["metadata"]["namespace"],
                        pod["metadata"]["name"],
                        parsed.scheme,
                    )
                    return None
                mounts.append((model_dir, self.node_paths.host(parsed.path)))
        return PathMap(tuple(mounts))

    def _start(self, pod: dict[str, Any], ip: str) -> None:
        name = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        control = self._control(pod["metadata"]["namespace"])
        serving = next((c for c in pod["spec"]["containers"] if c["name"] == SERVING_CONTAINER), None)
        if serving is None:
            return
        paths = self._paths(pod, serving)
        if paths is None:
            return
        try:
            flags = parse(list(serving.get("args") or []))
            model_version = _served(pod)
            table = control_table(control)
            entry = entry_of(table, *model_version) if model_version else {}
            server = ModelServer(
                flags,
                self.registry,
                paths,
                lambda model, version: load_delay(control, model, version),
                metrics_fault=entry.get("metrics"),
                predict_seconds=float(entry.get("predict_seconds", 0.0)),
            )
            grpc_enabled = self.grpc_enabled or table.get("grpc") is True
            self.pods[pod["metadata"]["uid"]] = ServingEndpoints.start(server, ip, grpc_enabled)
        except Exception as exc:  # a bad flag, config or bind: the container would crash, no server
            LOG.error("pod %s: the model server does not start: %s", name, exc)
            return
        LOG.info("pod %s on %s serves %s", name, ip, ", ".join(server.models))

    def _stop(self, uid: str) -> None:
        endpoints = self.pods.pop(uid, None)
        if endpoints is not None:
            endpoints.stop()
            shutil.rmtree(self.workdir / uid, ignore_errors=True)

    def sync(self, event_type: str, pod: dict[str, Any]) -> None:
        meta, status = pod["metadata"], pod.get("status") or {}
        ip = status.get("podIP")
        gone = event_type == "DELETED" or meta.get("deletionTimestamp") is not None
        if gone or status.get("phase") != "Running" or not ip:
            self._stop(meta["uid"])
        elif meta["uid"] not in self.pods and self._serves(meta["namespace"]):
            self._start(pod, ip)

    def _list(self, **kwargs: Any) -> Any:
        # Plain JSON: building the client's typed models costs more CPU than the servers
        # themselves, on the cores the benchmark measures.
        if self.namespace is None:
            return self.core.list_pod_for_all_namespaces(label_selector=SELECTOR, **kwargs)
        return self.core.list_namespaced_pod(self.namespace, label_selector=SELECTOR, **kwargs)

    def relist(self) -> str:
        """Serve exactly the running pods listed now; the resourceVersion to watch from.

        A pod deleted while nothing watched sends no event: without this its server would
        keep its address, and the next pod given that address could not bind it."""
        pod_list = json.loads(self._list(_preload_content=False).data)
        listed = set()
        for pod in pod_list["items"]:
            listed.add(pod["metadata"]["uid"])
            self.sync("ADDED", pod)
        for uid in set(self.pods) - listed:
            self._stop(uid)
        return str(pod_list["metadata"]["resourceVersion"])

    def watch_from(self, resource_version: str) -> str | None:
        """Follow pod events until the watch times out; where to go on, or None to list again."""
        response = self._list(
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=30,
            _preload_content=False,
        )
        try:
            for line in iter_resp_lines(response):
                event = json.loads(line)
                if event["type"] == "ERROR":
                    return None  # e.g. an expired resourceVersion: list and watch again
                resource_version = event["object"]["metadata"]["resourceVersion"]
                if event["type"] != "BOOKMARK":
                    self.sync(event["type"], event["object"])
                if self.stopping.is_set():
                    break
        finally:
            response.release_conn()
        return resource_version

    def run(self) -> None:
        resource_version: str | None = None
        while not self.stopping.is_set():
            try:
                if resource_version is None:
                    resource_version = self.relist()
                resource_version = self.watch_from(resource_version)
            except urllib3.exceptions.HTTPError:
                # The API server is down (a fault test kills it): the servers keep serving,
                # as containers outlive their control plane; list and watch again shortly.
                resource_version = None
                self.stopping.wait(0.5)
            except kubernetes.client.exceptions.ApiException as exc:
                # An expired watch (410) or an API server still starting: list and watch
                # again; one fleet serves test after test, so it must outlive any of them.
                LOG.warning("listing pods again after %s %s", exc.status, exc.reason)
                resource_version = None
                self.stopping.wait(0.5)

    def stop(self) -> None:
        self.stopping.set()
        for uid in list(self.pods):
            self._stop(uid)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubeconfig", required=True)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--namespace", help="serve this namespace's pods")
    where.add_argument(
        "--control-dir", type=Path, help="serve the pods of each namespace NS with a file DIR/NS.json"
    )
    parser.add_argument("--control", type=Path, default=None)
    parser.add_argument("--grpc", action="store_true", help="also serve gRPC on each pod's IP")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--node-path", action="append", default=[], help="NODE_PATH=DIR: where a file:// path lives here"
    )
    args = parser.parse_args(argv)
    node_paths = PathMap(
        tuple((node, Path(local)) for node, local in (p.split("=", 1) for p in args.node_path))
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    api = kubernetes.config.new_client_from_config(config_file=args.kubeconfig)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="modelserver-fleet-"))
    fleet = Fleet(
        api, args.namespace, args.control, args.grpc, workdir, node_paths, control_dir=args.control_dir
    )

    def stop_and_exit(*_: object) -> None:
        fleet.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop_and_exit)
    fleet.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
