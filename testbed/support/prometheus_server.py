"""A real Prometheus (Debian's package): it scrapes the model servers of one namespace
(file_sd targets written from the pods, what kubernetes_sd and relabelling would give) and,
once its caller writes the address, the operator's own /metrics."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import kubernetes

from testbed.cluster.localcluster import free_port
from testbed.support.wait import answers_ok, wait_for


class PodTargets(threading.Thread):
    """Writes file_sd targets for the namespace's pods: what kubernetes_sd and relabelling would give."""

    def __init__(self, core: kubernetes.client.CoreV1Api, namespace: str, path: Path) -> None:
        super().__init__(daemon=True)
        self.core, self.namespace, self.path = core, namespace, path
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.5):
            pods = self.core.list_namespaced_pod(
                self.namespace, label_selector="app.kubernetes.io/managed-by=modeldeploy"
            ).items
            targets = [
                {
                    "targets": [f"{p.status.pod_ip}:8501"],
                    "labels": {
                        "namespace": self.namespace,
                        "pod": p.metadata.name,
                        "version": p.metadata.labels["serving.modeldeploy.dev/version"],
                        "name": p.metadata.labels["app.kubernetes.io/name"],
                    },
                }
                for p in pods
                if p.status.pod_ip and p.status.phase == "Running"
            ]
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(targets))
            tmp.replace(self.path)


def operator_targets(workdir: Path) -> Path:
    """The file_sd file of the operator job of the Prometheus running in ``workdir``."""
    return workdir / "operator-targets.json"


def write_config(workdir: Path, interval: str) -> Path:
    """prometheus.yml in ``workdir``: the model servers' and the operator's file_sd jobs, both empty."""
    targets = workdir / "targets.json"
    targets.write_text("[]")
    operator_targets(workdir).write_text("[]")
    config = workdir / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": interval, "evaluation_interval": interval},
                "scrape_configs": [
                    {
                        "job_name": "tfserving",
                        "metrics_path": "/monitoring/prometheus/metrics",
                        "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "1s"}],
                    },
                    {
                        # The operator's own /metrics: a test writes its address here.
                        "job_name": "modeldeploy-operator",
                        "file_sd_configs": [
                            {"files": [str(operator_targets(workdir))], "refresh_interval": "1s"}
                        ],
                    },
                ],
            }
        )
    )
    return config


def start_prometheus(config: Path, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Debian's Prometheus on a free loopback port, ready: the process and its address."""
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    assert Path(binary).exists(), (
        "Prometheus is not installed: `make deps` installs Debian's prometheus package"
    )
    port = free_port()
    log_path = workdir / "prometheus.log"
    log = open(log_path, "ab")  # noqa: SIM115 - the child process keeps it
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    address = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if answers_ok(f"{address}/-/ready"):
            return True
        assert proc.poll() is None, log_path.read_text()
        return False

    wait_for(ready, 60, what="Prometheus ready")
    return proc, address


@contextmanager
def running_prometheus(
    core: kubernetes.client.CoreV1Api, namespace: str, workdir: Path, interval: str = "1s"
) -> Iterator[str]:
    """Prometheus scraping ``namespace``'s model servers every ``interval``, its state and log in
    ``workdir``; yields its address and stops it on exit."""
    proc, address = start_prometheus(write_config(workdir, interval), workdir)
    writer = PodTargets(core, namespace, workdir / "targets.json")
    writer.start()
    try:
        yield address
    finally:
        writer.stopping.set()
        proc.terminate()
        proc.wait(timeout=20)


def query(address: str, promql: str) -> list[dict[str, object]]:
    url = f"{address}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        result: list[dict[str, object]] = json.loads(response.read())["data"]["result"]
        return result
