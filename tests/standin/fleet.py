"""Runs a TF Serving stand-in on the IP of every running modeldeploy pod in a namespace.

    python -m tests.standin.fleet --kubeconfig K --namespace NS --control control.json

``control.json`` maps "<model>/<version>" (or "*") to a behaviour:
``{"load_seconds": 5, "error_rate": 0.5, "latency_ms": 20}``. A pod's behaviour is
fixed when its stand-in starts (as a real pod's model is), so a test writes the
control file before it asks for the version.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import kubernetes

from .server import Behaviour, PodServer

LOG = logging.getLogger("standin")
_PROBE_PATH = re.compile(r"^/v1/models/([^/]+)/versions/(\d+)$")


def model_of(pod: dict[str, Any]) -> tuple[str, int] | None:
    """The model and version a pod serves, from its readiness probe path."""
    for container in pod["spec"].get("containers") or []:
        path = ((container.get("readinessProbe") or {}).get("httpGet") or {}).get("path") or ""
        match = _PROBE_PATH.match(path)
        if match:
            return match.group(1), int(match.group(2))
    return None


def behaviour_for(control: Path, model: str, version: int) -> Behaviour:
    try:
        table: dict[str, Any] = json.loads(control.read_text())
    except (OSError, ValueError):
        table = {}
    return Behaviour.from_dict(table.get(f"{model}/{version}") or table.get("*") or {})


class Fleet:
    def __init__(
        self, api: kubernetes.client.ApiClient, namespace: str, control: Path, grpc_enabled: bool
    ) -> None:
        self.core = kubernetes.client.CoreV1Api(api)
        self.namespace = namespace
        self.control = control
        self.grpc_enabled = grpc_enabled
        self.servers: dict[str, PodServer] = {}  # pod uid -> server
        self.stopping = threading.Event()

    def _sync_pod(self, event_type: str, pod: dict[str, Any]) -> None:
        meta, status = pod["metadata"], pod.get("status") or {}
        uid, name, ip = meta["uid"], meta["name"], status.get("podIP")
        gone = event_type == "DELETED" or meta.get("deletionTimestamp") is not None
        if gone or status.get("phase") != "Running" or not ip:
            server = self.servers.pop(uid, None)
            if server is not None:
                server.stop()
            return
        if uid in self.servers:
            return
        served = model_of(pod)
        if served is None:
            return
        model, version = served
        try:
            self.servers[uid] = PodServer(
                ip,
                model,
                version,
                behaviour_for(self.control, model, version),
                self.grpc_enabled,
            )
            LOG.info("stand-in for %s (%s v%d) on %s", name, model, version, ip)
        except OSError as exc:
            LOG.warning("cannot serve %s on %s: %s", name, ip, exc)

    def run(self) -> None:
        selector = "app.kubernetes.io/managed-by=modeldeploy"
        while not self.stopping.is_set():
            watch = kubernetes.watch.Watch()
            try:
                # Plain JSON: building the client's typed models costs more CPU than the
                # stand-ins themselves, on the cores the benchmark measures.
                for event in watch.stream(
                    self.core.list_namespaced_pod,
                    self.namespace,
                    label_selector=selector,
                    timeout_seconds=30,
                    deserialize=False,
                ):
                    if event["type"] == "ERROR":
                        break  # e.g. an expired resourceVersion: list and watch again
                    self._sync_pod(event["type"], event["object"])
                    if self.stopping.is_set():
                        break
            except kubernetes.client.exceptions.ApiException as exc:
                if exc.status != 410:  # an expired watch just starts over
                    raise

    def stop(self) -> None:
        self.stopping.set()
        for server in self.servers.values():
            server.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--control", required=True, type=Path)
    # gRPC needs tensorflow-serving-api's status messages, which import TensorFlow
    # (seconds per process): only tests that speak gRPC turn it on.
    parser.add_argument("--grpc", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    api = kubernetes.config.new_client_from_config(config_file=args.kubeconfig)
    fleet = Fleet(api, args.namespace, args.control, grpc_enabled=args.grpc)
    signal.signal(signal.SIGTERM, lambda *_: (fleet.stop(), sys.exit(0)))
    fleet.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
