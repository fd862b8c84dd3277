"""The benchmark's peer: Argo Rollouts' controller doing the operator's work on the same
control plane, between the floor and the operator, measured the same way.

Per object a user applies the operator's ConfigMap and Service and a Rollout with the
operator's pod template (without the model gate) and canary steps, weights by replica
count. Argo Rollouts' Healthy means its pods are Ready; the operator's Ready waits for
TF Serving to report the version AVAILABLE. Its controller (built to listen on loopback
only) runs under its own token user, watching only its namespace, with the client rate and
workers in ``PeerSettings``: its defaults (40 requests/s, 10 workers) would measure its
throttle, not its work."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import kubernetes

from testbed.bench import rollout_objects
from testbed.bench.measure import (
    WRITE_VERBS,
    Audit,
    ReadyWatch,
    cluster_requests,
    cpu_delta,
    cpu_seconds,
    listening_addresses,
    per_object_by_verb,
    proc_usage,
    reaction_summary,
    settle,
    timings,
)
from testbed.cluster.localcluster import LocalCluster, free_ports, go_module_dir, versions
from testbed.support.kube import create_namespace, wait_namespace_deleted
from testbed.support.wait import answers_ok, wait_for

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "argo-rollouts" / "build.sh"
VERSIONS = REPO / "hack" / "argo-rollouts" / "versions.env"
MODULE = "github.com/argoproj/argo-rollouts"
USER = "argo-rollouts"
NAMESPACE = "bench-argo"
Manifest = dict[str, Any]


@dataclass(frozen=True)
class PeerSettings:
    qps: int = 1000  # the operator's client has no rate limit at all
    burst: int = 2000
    threads: int = 32  # the operator's workers in the benchmark

    def describe(self) -> str:
        return f"--qps {self.qps} --burst {self.burst} --rollout-threads {self.threads}"


def version() -> str:
    return versions(VERSIONS)["ARGO_ROLLOUTS_VERSION"]


def build_controller() -> Path:
    """The controller binary, built (or reused) from its Go module: before a round's control
    plane starts, so a first build is never inside a round."""
    out = subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True).stdout
    return Path(out.strip().splitlines()[-1]) / "rollouts-controller"


def crd_files() -> tuple[Path, ...]:
    """Its CRDs from the same module version the controller is built from."""
    crds = go_module_dir(MODULE, version()) / "manifests" / "crds"
    return tuple(crds / name for name in rollout_objects.CRD_FILES)


@dataclass
class RolloutsController:
    binary: Path
    kubeconfig: Path
    log_path: Path
    settings: PeerSettings
    process: subprocess.Popen[bytes] | None = None
    healthz_port: int = 0
    log: IO[bytes] | None = None

    def start(self, timeout: float = 60.0) -> RolloutsController:
        metrics_port, self.healthz_port = free_ports(2)
        command = [
            str(self.binary),
            f"--kubeconfig={self.kubeconfig}",
            "--namespaced",
            f"--namespace={NAMESPACE}",
            "--leader-elect=false",
            f"--metricsPort={metrics_port}",
            f"--healthzPort={self.healthz_port}",
            # Skips reading the server's version, which a locally built API server spells oddly.
            "--ingress-api-version=networking/v1",
            "--loglevel=warn",
            f"--qps={self.settings.qps}",
            f"--burst={self.settings.burst}",
            f"--rollout-threads={self.settings.threads}",
        ]
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - the child process writes it until stop()
        self.process = subprocess.Popen(
            command, env={**os.environ, "POD_NAMESPACE": NAMESPACE}, stdout=self.log, stderr=subprocess.STDOUT
        )
        wait_for(self.healthy, timeout, what="Argo Rollouts' healthz")
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise AssertionError(f"rollouts-controller exited with {self.process.returncode}:\n{tail}")
        return answers_ok(f"http://127.0.0.1:{self.healthz_port}/healthz")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log is not None:
            self.log.close()


def create(api: kubernetes.client.ApiClient, manifest: Manifest) -> None:
    """One object, as a user's ``kubectl create`` sends it."""
    namespace, kind = manifest["metadata"]["namespace"], manifest["kind"]
    if kind == "ConfigMap":
        kubernetes.client.CoreV1Api(api).create_namespaced_config_map(namespace, manifest)
    elif kind == "Service":
        kubernetes.client.CoreV1Api(api).create_namespaced_service(namespace, manifest)
    else:
        group, version_, plural = rollout_objects.RESOURCE
        kubernetes.client.CustomObjectsApi(api).create_namespaced_custom_object(
            group, version_, namespace, plural, manifest
        )


def create_all(api: kubernetes.client.ApiClient, names: list[str], md_spec: Manifest, workers: int) -> None:
    def one(name: str) -> None:
        md = rollout_objects.model_deployment(name, NAMESPACE, md_spec)
        for manifest in rollout_objects.children(md, 1):
            create(api, manifest)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, names))


@dataclass
class StepTimes:
    """Per Rollout the step index last seen and when its current pause began; per pause
    ended, the delay from its due time (its stored start plus its duration) to the status
    that moved past it, keyed by the operator's step number."""

    by_step: dict[int, list[float]] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    # name -> (step index of the pause, its due time)
    pauses: dict[str, tuple[int, float]] = field(default_factory=dict)

    @property
    def delays(self) -> list[float]:
        return [d for step in self.by_step.values() for d in step]

    def observe(self, obj: Manifest, now: float) -> None:
        name = obj["metadata"]["name"]
        index = rollout_objects.step_index(obj)
        if index is None:
            return
        previous = self.seen.get(name)
        pause = self.pauses.get(name)
        if previous is not None and index > previous and pause is not None and pause[0] == previous:
            # Steps are setWeight, pause, setWeight, pause...: pause 2k-1 ends the operator's step k.
            self.by_step.setdefault((previous + 1) // 2, []).append(now - pause[1])
            del self.pauses[name]
        started = rollout_objects.pause_started(obj)
        if started is not None and name not in self.pauses:
            self.pauses[name] = (index, started.timestamp() + rollout_objects.pause_seconds(obj, index))
        self.seen[name] = index


def promoted(obj: Manifest, to_version: str) -> bool:
    labels = obj["spec"]["template"]["metadata"].get("labels") or {}
    return rollout_objects.rollout_healthy(obj) and to_version in labels.values()


def canary_reaction(
    api: kubernetes.client.ApiClient, names: list[str], md_spec: Manifest, to_version: int = 2
) -> dict[str, Any]:
    """Move M Rollouts to the next version's template; per pause, the delay from its due
    time to the status that left it, as the operator's canary reaction is timed."""
    custom = kubernetes.client.CustomObjectsApi(api)
    group, api_version, plural = rollout_objects.RESOURCE
    times = StepTimes()
    done: set[str] = set()
    listed: set[str] = set()
    watching, finished = threading.Event(), threading.Event()

    def watch() -> None:
        stream = kubernetes.watch.Watch()
        for event in stream.stream(
            custom.list_namespaced_custom_object, group, api_version, NAMESPACE, plural, timeout_seconds=300
        ):
            now, obj = time.time(), event["object"]
            name = obj["metadata"]["name"]
            if name not in names:
                continue
            listed.add(name)
            if len(listed) == len(names):
                watching.set()
            times.observe(obj, now)
            if promoted(obj, str(to_version)):
                done.add(name)
                if len(done) == len(names):
                    finished.set()
                    stream.stop()

    threading.Thread(target=watch, daemon=True).start()
    if not watching.wait(30):
        raise TimeoutError("peer canary reaction: the watch did not list the Rollouts")
    for name in names:
        md = rollout_objects.model_deployment(name, NAMESPACE, md_spec)
        create(api, rollout_objects.config_map(md, to_version))
        template = rollout_objects.pod_template(md, to_version)
        custom.patch_namespaced_custom_object(
            group, api_version, NAMESPACE, plural, name, {"spec": {"template": template}}
        )
    if not finished.wait(300):
        raise TimeoutError(f"peer canary reaction: {len(done)}/{len(names)} promoted after 300s")
    return reaction_summary(len(names), times.by_step)


def own_requests(audit: Audit, start: int, end: int, n: int) -> dict[str, Any]:
    """The controller's own requests per object, by verb."""
    requests = audit.operator_requests(start, end)  # the audit's users: the controller's alone
    return {
        "per_object_total": round(len(requests) / n, 2),
        "per_object_by_verb": per_object_by_verb(requests, n),
        "status_writes_per_object": round(
            sum(1 for e in requests if (e.get("objectRef") or {}).get("subresource") == "status") / n, 2
        ),
    }


@dataclass(frozen=True)
class PeerRun:
    """What one peer phase is asked to do: the operator phase's objects and canaries."""

    binary: Path  # build_controller()'s
    names: list[str]
    canary_names: list[str]
    md_spec: Manifest  # the canaries' spec: the Rollouts' steps
    workers: int
    idle: float
    settings: PeerSettings


def run_peer_phase(
    api: kubernetes.client.ApiClient, cluster: LocalCluster, run: PeerRun, root: Path
) -> dict[str, Any]:
    """Argo Rollouts converges the N objects, idles, runs the M canaries; then it stops and
    its namespace goes, so the operator starts beside the floor's objects alone, as it did."""
    n = len(run.names)
    core = kubernetes.client.CoreV1Api(api)
    create_namespace(core, NAMESPACE)
    controller = RolloutsController(
        run.binary, cluster.peer_kubeconfig(USER), root / "argo-rollouts.log", run.settings
    )
    try:
        controller.start()
        pids = cluster.pids() | {USER: controller.pid}
        audit = Audit(cluster.audit_log, users=(USER,))
        watch = ReadyWatch(api, NAMESPACE, "rollout", n).start()
        settle(pids)
        cpu_before = cpu_seconds(pids)
        mark = audit.mark()
        start = time.monotonic()
        create_all(api, run.names, run.md_spec, run.workers)
        if not watch.finished.wait(900):
            raise TimeoutError(f"peer: {len(watch.done_at)}/{n} Rollouts Healthy after 900s")
        results: dict[str, Any] = {**timings(watch, start), "cpu_s": cpu_delta(cpu_before, cpu_seconds(pids))}
        converged = audit.mark()
        results["requests"] = cluster_requests(audit.namespace_requests(NAMESPACE, mark, converged), n)
        results["own"] = own_requests(audit, mark, converged, n)
        idle_start = audit.settled()
        time.sleep(run.idle)  # the idle window itself, as the operator's
        results["idle_writes"] = sum(
            1 for e in audit.operator_requests(idle_start) if e["verb"] in WRITE_VERBS
        )
        rss, cpu = proc_usage(controller.pid)
        results["footprint"] = {"peak_rss_mib": round(rss, 1), "cpu_seconds": round(cpu, 1)}
        # Its metrics and health servers: built to listen on loopback alone (build.sh).
        results["listening"] = listening_addresses(controller.pid)
        if run.canary_names:
            canary_mark = audit.mark()
            results["canary_reaction"] = canary_reaction(api, run.canary_names, run.md_spec)
            end = audit.settled()
            m = len(run.canary_names)
            results["canary_reaction"]["requests"] = {
                **cluster_requests(audit.namespace_requests(NAMESPACE, canary_mark, end), m),
                "own_per_rollout": round(len(audit.operator_requests(canary_mark, end)) / m, 2),
            }
        results["settings"] = run.settings.describe()
    finally:
        controller.stop()
    core.delete_namespace(NAMESPACE)
    wait_namespace_deleted(core, NAMESPACE)
    return results
