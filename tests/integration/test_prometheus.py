"""The Prometheus analysis provider against a real Prometheus scraping the model servers."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster.localcluster import free_port
from tests.modelserver.traffic import TrafficDriver
from tests.support.wait import wait_for

from .conftest import Cluster, Operator
from .test_canary import canary_sample, serving_v1

pytestmark = pytest.mark.timeout(240)


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
                    },
                }
                for p in pods
                if p.status.pod_ip and p.status.phase == "Running"
            ]
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(targets))
            tmp.replace(self.path)


@pytest.fixture
def prometheus(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    assert Path(binary).exists(), (
        "Prometheus is not installed: `make deps` installs Debian's prometheus package"
    )
    targets = tmp_path / "targets.json"
    targets.write_text("[]")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "tfserving",
                        "metrics_path": "/monitoring/prometheus/metrics",
                        "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "1s"}],
                    }
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


def prometheus_analysis(address: str) -> dict[str, object]:
    """Checks every 3s: increase() over the interval needs a few 1s scrapes."""
    return {
        "interval": "3s",
        "failureLimit": 2,
        "minRequests": 5,
        "successRate": {"min": 0.9},
        "latencyP99Ms": {"max": 250},
        "prometheus": {"address": address},
    }


def test_prometheus_provider_rolls_back_an_erroring_canary(
    cluster: Cluster,
    namespace: str,
    operator: Operator,
    prometheus: str,
    traffic: Callable[..., TrafficDriver],
) -> None:
    serving_v1(cluster, namespace, canary_sample(analysis=prometheus_analysis(prometheus)))
    traffic(inputs=(1.0, 9.0))  # version 3 refuses inputs >= 5: half of these
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 3}}})
    md = cluster.wait_phase(namespace, "mnist", "Degraded", timeout=90)
    entry = md["status"]["history"][-1]
    assert entry["result"] == "RolledBack"
    # Prometheus's increase() extrapolates, so the rate is near the traffic's 0.5, not exact.
    match = re.search(r"success rate (\d\.\d+) < 0.9", entry["reason"])
    assert match is not None, entry
    assert 0.35 < float(match.group(1)) < 0.65
    # The verdict came from Prometheus's data: the series are there, by version.
    series = query(
        prometheus,
        f':tensorflow:serving:request_count{{namespace="{namespace}",version="3",status="INVALID_ARGUMENT"}}',
    )
    assert series, "Prometheus never scraped the canary"


def test_prometheus_provider_promotes_a_healthy_canary(
    cluster: Cluster,
    namespace: str,
    operator: Operator,
    prometheus: str,
    traffic: Callable[..., TrafficDriver],
) -> None:
    serving_v1(cluster, namespace, canary_sample(analysis=prometheus_analysis(prometheus)))
    traffic()
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    md = cluster.wait_phase(namespace, "mnist", "Ready", timeout=120)
    assert md["status"]["stable"]["version"] == 2
    assert md["status"]["history"][-1]["result"] == "Promoted"
