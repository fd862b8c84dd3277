"""A real Prometheus (Debian's package) for the tests: it scrapes the model servers of the
test's namespace (file_sd targets written from the pods, what kubernetes_sd and relabelling
would give) and, once a test writes its address, the operator's own /metrics."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.cluster.localcluster import free_port
from tests.support.wait import wait_for

if TYPE_CHECKING:  # conftest imports this module for its fixture
    from .conftest import Cluster


class PodTargets(threading.Thread):
    """Writes file_sd targets for the namespace's pods: what kubernetes_sd and relabelling would give."""

    def __init__(self, cluster: Cluster, namespace: str, path: Path) -> None:
        super().__init__(daemon=True)
        self.cluster, self.namespace, self.path = cluster, namespace, path
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.5):
            pods = self.cluster.core.list_namespaced_pod(
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


def operator_targets(tmp_path: Path) -> Path:
    """The file_sd file of the fixture's operator job (the test's tmp_path is the fixture's)."""
    return tmp_path / "operator-targets.json"


@pytest.fixture
def prometheus(
    cluster: Cluster, namespace: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """Scrapes every second, or as ``@pytest.mark.scrape_interval("30s")`` says."""
    marker = request.node.get_closest_marker("scrape_interval")
    interval = marker.args[0] if marker is not None else "1s"
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    assert Path(binary).exists(), (
        "Prometheus is not installed: `make deps` installs Debian's prometheus package"
    )
    targets = tmp_path / "targets.json"
    targets.write_text("[]")
    operator_targets(tmp_path).write_text("[]")
    config = tmp_path / "prometheus.yml"
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
                            {"files": [str(operator_targets(tmp_path))], "refresh_interval": "1s"}
                        ],
                    },
                ],
            }
        )
    )
    port = free_port()
    log = open(tmp_path / "prometheus.log", "ab")  # noqa: SIM115 - the child process keeps it
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    address = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"{address}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            return False

    wait_for(ready, 60, what="Prometheus ready")
    writer = PodTargets(cluster, namespace, targets)
    writer.start()
    yield address
    writer.stopping.set()
    proc.terminate()
    proc.wait(timeout=20)


def query(address: str, promql: str) -> list[dict[str, object]]:
    url = f"{address}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        result: list[dict[str, object]] = json.loads(response.read())["data"]["result"]
        return result
