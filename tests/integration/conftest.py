"""Fixtures for tests against a real API server.

By default a local control plane (testbed/cluster/localcluster.py) is started for
the session. With MODELDEPLOY_TEST_KUBECONFIG set, the suite runs against that
cluster instead (kind, or any other); nothing is ever skipped: a cluster that
cannot start fails the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from kubernetes.client import ApiClient

from modeldeploy.api.names import GROUP, PLURAL, VERSION
from testbed.cluster.localcluster import (
    MODELDEPLOYMENT_CRD,
    LocalCluster,
    go_module_dir,
    install_crds,
    versions,
)
from testbed.modelserver.store import NODE_PATH, make_store
from testbed.modelserver.traffic import TrafficDriver
from testbed.support.kube import kubectl_path, temporary_namespace
from testbed.support.operator import OperatorProcess
from testbed.support.prometheus_server import running_prometheus
from testbed.support.wait import wait_for

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Cluster:
    kubeconfig: Path
    api: ApiClient
    # The suite's own control plane (None on an external cluster): fault tests kill its parts.
    local: LocalCluster | None = None

    @property
    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.api)

    @property
    def apps(self) -> kubernetes.client.AppsV1Api:
        return kubernetes.client.AppsV1Api(self.api)

    @property
    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api)

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(kubectl_path()), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            text=True,
            capture_output=True,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    # ----- ModelDeployments -----

    def create_md(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, body
        )
        return result

    def get_md(self, namespace: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name
        )
        return result

    def patch_md(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, patch
        )
        return result

    def condition(self, namespace: str, name: str, type_: str) -> dict[str, Any] | None:
        status = self.get_md(namespace, name).get("status") or {}
        return next((c for c in status.get("conditions") or [] if c["type"] == type_), None)

    def wait_phase(self, namespace: str, name: str, phase: str, timeout: float = 60.0) -> dict[str, Any]:
        seen: list[dict[str, Any]] = []

        def reached() -> dict[str, Any] | None:
            md = self.get_md(namespace, name)
            seen[:] = [md]
            status = md.get("status") or {}
            current = status.get("observedGeneration") == md["metadata"]["generation"]
            return md if current and status.get("phase") == phase else None

        try:
            return wait_for(reached, timeout, what=f"{namespace}/{name} phase {phase}")
        except AssertionError as exc:
            status = (seen[0].get("status") if seen else None) or {}
            summary = {k: status.get(k) for k in ("phase", "stable", "canary", "history")}
            summary["conditions"] = {
                c["type"]: (c["status"], c["message"]) for c in status.get("conditions", [])
            }
            raise AssertionError(f"{exc}\nlast status: {json.dumps(summary, indent=1)}") from None

    def events(self, namespace: str, name: str) -> list[tuple[str, str, str]]:
        events = self.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
        return [(e.type, e.reason, e.message) for e in events.items]

    def wait_event(
        self, namespace: str, name: str, reason: str, type_: str | None = None, timeout: float = 10.0
    ) -> tuple[str, str, str]:
        """The first Event with ``reason`` (the operator posts it right after the status
        write a test has just seen, so it may be a moment behind)."""
        found: tuple[str, str, str] = wait_for(
            lambda: next(
                (e for e in self.events(namespace, name) if e[1] == reason and type_ in (None, e[0])), None
            ),
            timeout,
            what=f"event {reason} on {namespace}/{name}",
        )
        return found

    def wait_deployments_settled(self, namespace: str, timeout: float = 30.0) -> None:
        """Until every Deployment's own status (the controller-manager's) has caught up with
        its pods. The operator calls a version Ready once its pods pass the model gate; the
        kubelet's Ready flip that the gate sets off, and the ReplicaSet and Deployment status
        writes after it, come a moment later and are not the operator's: a test that watches
        for the operator's writes starts after them."""

        def settled() -> bool:
            deployments = self.apps.list_namespaced_deployment(namespace).items
            return bool(deployments) and all(
                d.status.observed_generation == d.metadata.generation
                and (d.status.available_replicas or 0) == d.spec.replicas == (d.status.updated_replicas or 0)
                for d in deployments
            )

        wait_for(settled, timeout, what=f"the Deployments' status in {namespace} settled")

    def children(self, namespace: str, md_name: str) -> dict[str, list[str]]:
        selector = f"app.kubernetes.io/name={md_name},app.kubernetes.io/managed-by=modeldeploy"
        return {
            "deployments": [
                d.metadata.name
                for d in self.apps.list_namespaced_deployment(namespace, label_selector=selector).items
            ],
            "services": [
                s.metadata.name
                for s in self.core.list_namespaced_service(namespace, label_selector=selector).items
            ],
            "configmaps": [
                c.metadata.name
                for c in self.core.list_namespaced_config_map(namespace, label_selector=selector).items
            ],
        }


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    external = os.environ.get("MODELDEPLOY_TEST_KUBECONFIG")
    # Gateway API CRDs (for the GatewayAPI router) come with the gateway-api Go module.
    gateway_module = go_module_dir("sigs.k8s.io/gateway-api", versions()["GATEWAY_API_VERSION"])
    gateway_crds = gateway_module / "config" / "crd" / "standard"
    # PodMonitor and PrometheusRule (manifests/monitoring/, the chart), from the Prometheus
    # Operator's Go module: the API server validates ours against their real schemas.
    prometheus_operator = go_module_dir(
        "github.com/prometheus-operator/prometheus-operator", versions()["PROMETHEUS_OPERATOR_VERSION"]
    )
    monitoring_crds = tuple(
        prometheus_operator / "example" / "prometheus-operator-crd" / f"monitoring.coreos.com_{plural}.yaml"
        for plural in ("podmonitors", "prometheusrules")
    )
    crds = (MODELDEPLOYMENT_CRD, gateway_crds, *monitoring_crds)
    local: LocalCluster | None = None
    if external:
        kubeconfig = Path(external)
    else:
        local = LocalCluster(tmp_path_factory.mktemp("cluster"), crds=crds)
        kubeconfig = local.up()  # installs the CRDs before the controller-manager starts
    api = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    handle = Cluster(kubeconfig, api, local)
    if external:
        install_crds(kubectl_path(), kubeconfig, crds, 60)
    if local is not None:
        # Pods need a node that kwok has made Ready before anything can schedule.
        handle.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=60s")
    try:
        yield handle
    finally:
        api.close()
        if local is not None:
            local.down()


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    with temporary_namespace(cluster.core, "t") as name:
        yield name


# The operator as a real process, one per test, watching the test's namespace.
Operator = OperatorProcess


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_FAILED] = report.failed


_FAILED = pytest.StashKey[bool]()


@dataclass
class ModelServers:
    """The model servers of every modeldeploy pod of the test's namespace."""

    fleet: ModelServerFleet
    namespace: str

    @property
    def control(self) -> Path:
        """The namespace's control table: the fleet serves its pods while the file exists."""
        return self.fleet.control_dir / f"{self.namespace}.json"

    def log(self) -> str:
        return self.fleet.lines_about(self.namespace)

    def _set(self, model: str, version: int, **entry: object) -> None:
        table = json.loads(self.control.read_text()) if self.control.exists() else {}
        table.setdefault(f"{model}/{version}", {}).update(entry)
        self.control.write_text(json.dumps(table))

    def slow(self, version: int, load_seconds: float, model: str = "mnist") -> None:
        """Pods of ``version`` that start from now on wait this long before their model loads."""
        self._set(model, version, load_seconds=load_seconds)

    def slow_predictions(self, version: int, seconds: float, model: str = "mnist") -> None:
        """Pods of ``version`` that start from now on take this long per prediction."""
        self._set(model, version, predict_seconds=seconds)

    def break_metrics(self, version: int, fault: str, model: str = "mnist") -> None:
        """Pods of ``version`` that start from now on serve a broken metrics page (nan, negative, garbage,
        non_utf8, drip)."""
        self._set(model, version, metrics=fault)


@pytest.fixture(scope="session")
def model_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The store ``file:///models-store`` of the sample manifest reads (see testbed.modelserver.store)."""
    return make_store(tmp_path_factory.mktemp("models-store"))


@dataclass
class ModelServerFleet:
    """One model server process per test worker, serving the pods of each namespace that has
    a control table in ``control_dir``: TensorFlow is imported and each model loaded once, not
    once per test (about 11 CPU-seconds each time, on the cores the tests share)."""

    control_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    def alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise AssertionError(f"the model server fleet exited ({self.process.returncode}):\n{tail}")

    def lines_about(self, namespace: str) -> str:
        """The log lines that name the namespace (each pod's server logs its namespace)."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(line for line in lines if f" {namespace}/" in line)


@pytest.fixture(scope="session")
def modelserver_fleet(
    cluster: Cluster, model_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModelServerFleet]:
    root = tmp_path_factory.mktemp("modelservers")
    control_dir = root / "control"
    control_dir.mkdir()
    log_path = root / "modelservers.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "testbed.modelserver.fleet",
                f"--kubeconfig={cluster.kubeconfig}",
                f"--control-dir={control_dir}",
                f"--workdir={root / 'pods'}",
                f"--node-path={NODE_PATH}={model_store}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    yield ModelServerFleet(control_dir, log_path, process)
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture
def modelservers(
    modelserver_fleet: ModelServerFleet, namespace: str, request: pytest.FixtureRequest
) -> Iterator[ModelServers]:
    modelserver_fleet.alive()
    handle = ModelServers(modelserver_fleet, namespace)
    handle.control.write_text(json.dumps({"grpc": True} if request.node.get_closest_marker("grpc") else {}))
    yield handle
    handle.control.unlink(missing_ok=True)


@pytest.fixture
def traffic(cluster: Cluster, namespace: str) -> Iterator[Callable[..., TrafficDriver]]:
    drivers: list[TrafficDriver] = []

    def start(
        name: str = "mnist",
        model: str = "mnist",
        rps: float = 40.0,
        inputs: tuple[float, ...] = (1.0,),
        workers: int = 8,
    ) -> TrafficDriver:
        # Slow predictions need more requests in flight than the default workers hold to keep ``rps``.
        driver = TrafficDriver(
            cluster.api, namespace, name, model, rps=rps, workers=workers, inputs=inputs
        ).start()
        drivers.append(driver)
        return driver

    yield start
    for driver in drivers:
        driver.stop()


@pytest.fixture
def start_operator(
    cluster: Cluster,
    namespace: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    modelservers: ModelServers,
) -> Iterator[Callable[..., Operator]]:
    started: list[Operator] = []

    def start(
        kubeconfig: Path | None = None,
        watch_namespace: str | None = None,
        options: tuple[str, ...] = (),
        **env: str,
    ) -> Operator:
        # The tests' Prometheus servers (a real one, scripted broken ones) listen on loopback.
        env.setdefault("MODELDEPLOY_PROMETHEUS_ALLOWED", "http://127.0.0.1:")
        op = OperatorProcess(
            kubeconfig or cluster.kubeconfig,
            tmp_path / f"operator-{len(started)}.log",
            namespace=watch_namespace or namespace,
            env=env,
            options=options,
        )
        started.append(op)
        op.start()
        return op

    yield start
    for op in started:
        op.stop()
    if request.node.stash.get(_FAILED, False):
        for op in started:
            # Shown under "Captured stdout teardown" of the failed test.
            print(f"===== operator log {op.log_path.name} =====\n{op.log()[-20000:]}")
        print(f"===== model servers =====\n{modelservers.log()[-5000:]}")


@pytest.fixture
def operator(start_operator: Callable[..., Operator]) -> Operator:
    return start_operator()


def sample(name: str = "mnist", **spec_overrides: Any) -> dict[str, Any]:
    """The README's sample manifest, with spec overrides for a test."""
    body: dict[str, Any] = yaml.safe_load((REPO / "manifests" / "samples" / "mnist.yaml").read_text())
    body["metadata"]["name"] = name
    for key, value in spec_overrides.items():
        if value is None:
            body["spec"].pop(key, None)
        else:
            body["spec"][key] = value
    return body


@pytest.fixture
def prometheus(
    cluster: Cluster, namespace: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A real Prometheus scraping the test's namespace every second, or as
    ``@pytest.mark.scrape_interval("30s")`` says; its working directory is the test's tmp_path."""
    marker = request.node.get_closest_marker("scrape_interval")
    interval = marker.args[0] if marker is not None else "1s"
    with running_prometheus(cluster.core, namespace, tmp_path, interval) as address:
        yield address
