"""Two operator replicas: real `kopf run` processes electing a leader on a Lease
of the real API server. The leader is killed at random points of canaries, or paused inside
the check that decides a rollback; the rollouts still end as they should, and no write of a
replica that lost the lease lands.

The Lease lives in the test's namespace and its timings are a fraction of the defaults,
so a failover takes seconds.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
import urllib.error
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.api.names import LABEL_MODEL_AVAILABLE
from modeldeploy.api.times import parse_time
from modeldeploy.control.apply import Applier
from modeldeploy.control.kinds import BY_KIND, new_cache
from modeldeploy.control.writes import Writes
from modeldeploy.kube.client import Kube, load_client_config
from modeldeploy.kube.lease import LeaseTimings
from modeldeploy.kube.workqueue import RetryLaterError
from testbed.cluster.localcluster import OPERATOR_USER, STANDBY_USER
from testbed.modelserver.traffic import TrafficDriver
from testbed.support.tcp_proxy import TcpProxy
from testbed.support.wait import wait_for
from tests.support.scripted_http import ScriptedServer

from .conftest import Cluster, Operator
from .test_canary import canary_sample, serving_v1
from .test_outage import kubeconfig_through, probes

pytestmark = pytest.mark.timeout(420)
LEASE = "modeldeploy-operator"
TIMINGS = {
    "MODELDEPLOY_LEASE_DURATION_SECONDS": "4",
    "MODELDEPLOY_LEASE_RENEW_DEADLINE_SECONDS": "3",
    "MODELDEPLOY_LEASE_RETRY_PERIOD_SECONDS": "0.5",
}
INTERVAL_SECONDS = 1.0
STEPS = [{"weight": 20, "pause": "6s"}, {"weight": 50, "pause": "6s"}, {"weight": 80, "pause": "6s"}]


@dataclass
class Replicas:
    """The operator replicas of a test, each with its own identity (POD_NAME)."""

    cluster: Cluster
    namespace: str
    start_operator: Callable[..., Operator]
    running: dict[str, Operator] = field(default_factory=dict)
    count: int = 0
    # Seconds from each SIGKILL of a leader until another replica held the lease.
    failovers: list[float] = field(default_factory=list)

    def start(self, kubeconfig: Any = None, timings: dict[str, str] = TIMINGS) -> str:
        """Start a replica; ``timings`` are lease settings (empty: the shipped defaults)."""
        identity = f"replica-{self.count}"
        self.count += 1
        self.running[identity] = self.start_operator(
            kubeconfig=kubeconfig,
            MODELDEPLOY_LEADER_ELECTION="true",
            MODELDEPLOY_LEASE_NAMESPACE=self.namespace,
            POD_NAME=identity,
            **timings,
        )
        return identity

    def holder(self) -> str:
        coordination = kubernetes.client.CoordinationV1Api(self.cluster.api)
        try:
            lease = coordination.read_namespaced_lease(LEASE, self.namespace)
        except kubernetes.client.ApiException:
            return ""
        return str(lease.spec.holder_identity or "")

    def leader(self) -> str:
        found: str = wait_for(lambda: self.holder() in self.running and self.holder(), 30, what="a leader")
        return found

    def kill_leader(self) -> str:
        leader = self.leader()
        self.running.pop(leader).stop(kill=True)
        killed_at = time.monotonic()
        wait_for(lambda: self.holder() in self.running, 30, interval=0.05, what="a new leader")
        self.failovers.append(time.monotonic() - killed_at)
        return leader


@pytest.fixture
def replicas(cluster: Cluster, namespace: str, start_operator: Callable[..., Operator]) -> Replicas:
    return Replicas(cluster, namespace, start_operator)


@dataclass
class StatusWatch:
    """Reads the resource's status every 100 ms and records what must never happen."""

    cluster: Cluster
    namespace: str
    problems: list[str] = field(default_factory=list)
    failed_max: int = 0
    last_step: dict[int, int] = field(default_factory=dict)
    last_checks: dict[int, int] = field(default_factory=dict)
    first_seen: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StatusWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                status = self.cluster.get_md(self.namespace, "mnist").get("status") or {}
            except Exception:  # a read that failed is simply not recorded
                continue
            self.record(status)

    def record(self, status: dict[str, Any]) -> None:
        failed = len(status.get("failedVersions") or [])
        if failed < self.failed_max:
            self.problems.append(f"failedVersions shrank: {status.get('failedVersions')}")
        self.failed_max = max(self.failed_max, failed)
        canary = status.get("canary")
        if not canary:
            return
        version, step = canary["version"], canary.get("step", 0)
        if step < self.last_step.get(version, 0):
            self.problems.append(f"canary {version} went back from step {self.last_step[version]} to {step}")
        self.last_step[version] = max(step, self.last_step.get(version, 0))
        analysis = canary.get("analysis") or {}
        checks = analysis.get("passed", 0) + analysis.get("failed", 0) + analysis.get("inconclusive", 0)
        if checks < self.last_checks.get(version, 0):
            self.problems.append(f"canary {version}: analysis counts went back to {analysis}")
        self.last_checks[version] = max(checks, self.last_checks.get(version, 0))
        self.first_seen.setdefault(version, time.monotonic())


def kill_leader_now_and_then(replicas: Replicas, times: int, rng: random.Random) -> list[str]:
    """Kill the leader ``times`` times at random moments; a new replica replaces each."""
    killed = []
    for _ in range(times):
        time.sleep(rng.uniform(0.5, 3.0))  # a random point of the rollout, on purpose
        killed.append(replicas.kill_leader())
        replicas.start()
    return killed


def test_the_leader_killed_five_times_through_a_healthy_and_a_failing_canary(
    cluster: Cluster, namespace: str, replicas: Replicas, traffic: Callable[..., TrafficDriver]
) -> None:
    rng = random.Random(16)
    replicas.start()
    replicas.start()
    body = canary_sample(steps=STEPS, progressDeadlineSeconds=120)
    body["spec"]["rollout"]["analysis"]["interval"] = f"{INTERVAL_SECONDS:g}s"
    serving_v1(cluster, namespace, body)
    driver = traffic(inputs=(1.0, 2.0, 9.0))  # x = 9 is refused by version 3's graph
    with StatusWatch(cluster, namespace) as watch:
        cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
        started = time.monotonic()
        killed = kill_leader_now_and_then(replicas, 3, rng)
        md = cluster.wait_phase(namespace, "mnist", "Ready", timeout=180)
        healthy_seconds = time.monotonic() - started
        assert md["status"]["stable"]["version"] == 2
        cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 3}}})
        killed += kill_leader_now_and_then(replicas, 2, rng)

        def rolled_back() -> dict[str, Any] | None:
            status = cluster.get_md(namespace, "mnist").get("status") or {}
            history = status.get("history") or []
            return status if history and history[-1]["version"] == 3 else None

        status = wait_for(rolled_back, 180, what="version 3 rolled back")
    assert len(killed) == 5
    print(
        f"failover after SIGKILL (lease 4 s, retry 0.5 s): {sorted(round(f, 2) for f in replicas.failovers)}"
    )
    assert max(replicas.failovers) < 4 + 0.5 + 2, replicas.failovers
    assert len(set(killed)) == 5, "each kill took a different replica"
    assert watch.problems == []
    results = [(h["version"], h["result"]) for h in status["history"]]
    assert results.count((2, "Promoted")) == 1, results
    assert results.count((3, "RolledBack")) == 1, results
    assert status["failedVersions"] == [3]
    assert status["stable"]["version"] == 2
    # Each analysis interval is counted once: never more checks than intervals that passed.
    assert watch.last_checks[2] <= healthy_seconds / INTERVAL_SECONDS + 1, (
        watch.last_checks,
        healthy_seconds,
    )
    wait_for(
        lambda: cluster.children(namespace, "mnist")["deployments"] == ["mnist-v2"],
        60,
        what="only version 2 left",
    )
    assert driver.counts().get(2, 0) > 0


def audit_entries(cluster: Cluster, since: datetime) -> Iterator[dict[str, Any]]:
    assert cluster.local is not None
    for line in cluster.local.audit_log.read_text().splitlines():
        entry = json.loads(line)
        if parse_time(entry["stageTimestamp"]) >= since:
            yield entry


WRITES = {"create", "update", "patch", "delete"}


# The paused leader's canary: a scripted Prometheus answers every check that half of the
# canary's requests failed, and a check every 2 s leaves time to arm the pause between two.
FAILURE_LIMIT = 3
# Only the custom metric's query names it: the last request of each check (the built-in
# queries come first), where the leader is paused. Not at a built-in query: the pause
# outlasts each query's 2 s deadline, and a built-in query cut short makes the whole check
# Inconclusive (no rollback to write); a custom metric cut short leaves a Failed check Failed.
PAUSE_METRIC = "canary_answers_agreeing"
PAUSE_ANALYSIS: dict[str, Any] = {
    "interval": "2s",
    "failureLimit": FAILURE_LIMIT,
    "metrics": [
        {"name": "agreement", "query": f'sum({PAUSE_METRIC}{{version="{{{{version}}}}"}})', "min": 0.9}
    ],
}


def prometheus_vector(value: str) -> bytes:
    """A Prometheus instant-query answer of one series holding ``value``."""
    return json.dumps(
        {
            "status": "success",
            "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, value]}]},
        }
    ).encode()


@pytest.fixture
def failing_prometheus() -> Iterator[ScriptedServer]:
    """Every check it answers fails: 50 errors in 100 requests, a custom metric below its min."""
    server = ScriptedServer(default=prometheus_vector("100"))  # the requests in the window
    server.queries['status!="OK"'] = prometheus_vector("50")  # the errors among them
    server.queries["histogram_quantile"] = prometheus_vector("1000")  # p99: 1 ms, in microseconds
    server.queries[PAUSE_METRIC] = prometheus_vector("0")
    yield server
    server.stop()


def passes_finished(operator: Operator) -> float:
    """Passes the replica has finished (its modeldeploy_reconcile_total, every result). A
    standby's worker returns before a pass is counted, so after a replica stopped leading only
    the passes it was inside when it lost the lease still add to it."""
    families = text_string_to_metric_families(operator.metrics())
    return sum(s.value for f in families for s in f.samples if s.name == "modeldeploy_reconcile_total")


@dataclass
class PauseInCheck:
    """A one-shot ScriptedServer hook: SIGSTOPs a replica when its pass asks the custom
    metric's query, before the answer is sent. The built-in queries of that check have
    failed already, so its verdict is Failed whatever the cut-short query comes to."""

    operator: Operator
    passes_before: float = -1.0  # passes finished when it was paused: the paused one is not
    at: float = 0.0  # monotonic time of the SIGSTOP
    paused: threading.Event = field(default_factory=threading.Event)

    def __call__(self, query: str) -> bool:
        if PAUSE_METRIC not in query:
            return False
        self.passes_before = passes_finished(self.operator)
        os.kill(self.operator.pid, signal.SIGSTOP)
        self.at = time.monotonic()
        self.paused.set()
        return True


def test_a_paused_leader_that_lost_its_lease_writes_nothing_when_it_wakes(
    cluster: Cluster, namespace: str, replicas: Replicas, failing_prometheus: ScriptedServer
) -> None:
    """The leader is paused inside the check that reaches failureLimit, at its last query:
    the new leader records the rollback and deletes the canary while it sleeps. Woken, the
    paused pass ends its check (Failed: the cut-short query only adds an Inconclusive metric)
    holding a rollback computed from a canary the new leader has ended, next to be written:
    status, then the canary's children. Only fencing stops those writes (the leadership
    check after the probes, the resourceVersion preconditions): none of them may land."""
    if cluster.local is None:
        pytest.skip("reads the suite's own API server audit log")
    # Two identities, so the audit log tells the replicas' requests apart.
    replicas.start(cluster.local.operator_kubeconfig)
    replicas.start(cluster.local.standby_kubeconfig)
    users = {"replica-0": OPERATOR_USER, "replica-1": STANDBY_USER}
    body = canary_sample(steps=STEPS, progressDeadlineSeconds=120)
    analysis = body["spec"]["rollout"]["analysis"]
    analysis.update(PAUSE_ANALYSIS, prometheus={"address": failing_prometheus.address})
    serving_v1(cluster, namespace, body)
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 3}}})

    def failed_checks() -> int:
        canary = (cluster.get_md(namespace, "mnist").get("status") or {}).get("canary") or {}
        return int((canary.get("analysis") or {}).get("failed", 0)) if canary.get("version") == 3 else 0

    wait_for(lambda: failed_checks() == FAILURE_LIMIT - 1, 60, interval=0.05, what="one check short")
    paused = replicas.leader()  # only the leader's workers run passes, so only it asks Prometheus
    process = replicas.running[paused]
    pause = PauseInCheck(process)
    failing_prometheus.on_request = pause  # armed now: the next check is the one that fails last
    try:
        wait_for(pause.paused.is_set, 30, interval=0.05, what="the leader paused inside its check")
        assert failed_checks() == FAILURE_LIMIT - 1, "the paused leader had rolled back already"
        other = wait_for(
            lambda: replicas.holder() not in ("", paused) and replicas.holder(), 30, what="a new leader"
        )
        failover = time.monotonic() - pause.at
        # The new leader rolls back (status first, then the canary's Deployment goes).
        rolled_back = cluster.wait_phase(namespace, "mnist", "Degraded", timeout=60)
        wait_for(
            lambda: cluster.children(namespace, "mnist")["deployments"] == ["mnist-v1"],
            30,
            what="the canary's Deployment deleted by the new leader",
        )
    finally:
        failing_prometheus.on_request = None  # never armed past this test's pause
        woke_at = datetime.now().astimezone()
        os.kill(process.pid, signal.SIGCONT)
    woken_seconds = time.monotonic()
    assert rolled_back["status"]["history"][-1]["result"] == "RolledBack"

    def paused_pass_ended() -> bool:
        deployments = cluster.children(namespace, "mnist")["deployments"]
        assert deployments == ["mnist-v1"], f"the canary came back after the rollback: {deployments}"
        return passes_finished(process) > pause.passes_before and "stopped leading" in process.log()

    # Until the pass it was paused in has ended (every write it held was tried by then) and
    # the woken replica has stepped down.
    wait_for(paused_pass_ended, 60, interval=0.1, what="the paused pass ending, the replica stepping down")
    assert replicas.holder() == other
    print(
        f"failover after SIGSTOP inside a check (lease 4 s, retry 0.5 s): {failover:.2f}s; "
        f"paused pass ended {time.monotonic() - woken_seconds:.2f}s after SIGCONT"
    )
    assert failover < 4 + 0.5 + 3, f"the standby took over after {failover:.1f}s"
    sent = [
        (
            e["verb"],
            e["objectRef"].get("resource"),
            e["objectRef"].get("subresource"),
            e["responseStatus"]["code"],
        )
        for e in audit_entries(cluster, woke_at)
        if e["user"]["username"] == users[paused]
        and e["verb"] in WRITES
        and e["objectRef"].get("namespace") == namespace
    ]
    landed = [write for write in sent if write[3] < 300]
    assert landed == [], f"the replica that lost its lease still wrote: {landed}"
    # Not even refused ones: a replica past its renew deadline knows it no longer leads and asks
    # before writing. The resourceVersion preconditions guard the moment between that question
    # and the request; the stale-view test below and tests/unit/test_fencing.py cover them.
    assert sent == [], f"the replica that lost its lease sent writes (the server refused them): {sent}"
    status = cluster.get_md(namespace, "mnist")["status"]
    results = [(h["version"], h["result"]) for h in status["history"]]
    assert results.count((3, "RolledBack")) == 1, results
    assert [r for _, r in results].count("RolledBack") == 1, results
    # The rollback on record is the new leader's, at its time: not one the woken replica
    # computed from its own view and wrote over it.
    assert status["history"] == rolled_back["status"]["history"], status["history"]
    assert status["failedVersions"] == [3]
    assert status["stable"]["version"] == 1


def test_a_leader_cut_off_from_the_api_server_stops_leading_and_fails_its_health_check(
    cluster: Cluster, namespace: str, replicas: Replicas, tmp_path: Path
) -> None:
    if cluster.local is None:
        pytest.skip("reaches the suite's own API server through a proxy it can stall")
    server = json.loads(cluster.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    host, port = server.removeprefix("https://").rsplit(":", 1)
    proxy = TcpProxy((host, int(port))).start()
    try:
        identity = replicas.start(kubeconfig_through(proxy, cluster, tmp_path / "through-proxy"))
        op = replicas.running[identity]
        wait_for(lambda: replicas.holder() == identity, 30, what="the only replica leading")
        wait_for(lambda: probes(op)["leader"] == f"{identity}: leading", 30, what="the probe saying so")
        proxy.stall()  # silent: its renewals go nowhere
        wait_for(lambda: "stopped leading: no renewal within 3s" in op.log(), 30, what="stepping down")

        def unhealthy() -> bool:
            try:
                probes(op)
            except urllib.error.HTTPError as exc:
                return exc.code == 500
            return False

        wait_for(unhealthy, 30, what="/healthz failing")  # kopf keeps probe results 10 s
        proxy.resume()
        wait_for(
            lambda: "is now the leader" in op.log().split("stopped leading")[-1], 30, what="leading again"
        )
    finally:
        proxy.close()


def leader_gauge(operator: Operator) -> float:
    families = text_string_to_metric_families(operator.metrics())
    return next(s.value for f in families for s in f.samples if s.name == "modeldeploy_leader")


def test_a_leader_shut_down_cleanly_hands_over_within_one_retry_period(
    cluster: Cluster, namespace: str, replicas: Replicas
) -> None:
    """With the shipped timings: without the release the standby would wait out the whole
    lease duration; with it, the standby's next try takes the Lease."""
    defaults = LeaseTimings()
    first = replicas.start(timings={})
    wait_for(lambda: replicas.holder() == first, 30, what="the first replica leading")
    second = replicas.start(timings={})
    # Which replica leads, as /metrics tells Prometheus (the alert on no leader reads it).
    assert leader_gauge(replicas.running[first]) == 1
    assert leader_gauge(replicas.running[second]) == 0
    coordination = kubernetes.client.CoordinationV1Api(cluster.api)
    since = coordination.read_namespaced_lease(LEASE, namespace).metadata.resource_version
    terminated_at = time.monotonic()
    replicas.running.pop(first).stop()  # SIGTERM, then waits for the process to end
    wait_for(lambda: replicas.holder() == second, 30, interval=0.05, what="the standby leading")
    handover = time.monotonic() - terminated_at
    wait_for(lambda: leader_gauge(replicas.running[second]) == 1, 10, what="the new leader's gauge")
    # Every write of the Lease since, in order (a watch from a resourceVersion misses none).
    writes = [
        event["object"].spec
        for event in kubernetes.watch.Watch().stream(
            coordination.list_namespaced_lease,
            namespace,
            field_selector=f"metadata.name={LEASE}",
            resource_version=since,
            timeout_seconds=1,
        )
    ]
    released = next(spec for spec in writes if not spec.holder_identity)
    taken = next(spec for spec in writes if spec.holder_identity == second)
    gap = (taken.acquire_time - released.renew_time).total_seconds()
    print(f"graceful hand-over: lease free for {gap:.2f}s, SIGTERM to new leader {handover:.2f}s")
    assert released.lease_duration_seconds == 1
    # One retry period, plus a request's time (both times come from this machine's clock).
    assert 0 <= gap <= defaults.retry_period + 0.5, gap
    assert handover < defaults.lease_duration, handover


def test_child_and_gate_writes_computed_from_a_stale_view_are_refused_by_the_api_server(
    cluster: Cluster, namespace: str
) -> None:
    """What fences a former leader's writes besides its leadership check: the API server
    itself refuses an apply or a gate patch carrying a version someone has written past."""
    kube = Kube(load_client_config(2, str(cluster.kubeconfig)), BY_KIND)
    cache = new_cache()
    applier = Applier(kube, cache)
    labels = {"app": "fenced"}
    manifest: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "fenced", "namespace": namespace},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        },
    }
    applier._apply_if_changed((namespace, "fenced"), json.loads(json.dumps(manifest)))  # created: now cached
    # Another replica, leading now, writes the Deployment: this replica's cache has not seen it.
    cluster.apps.patch_namespaced_deployment("fenced", namespace, {"metadata": {"labels": {"moved": "on"}}})
    manifest["spec"]["replicas"] = 1
    with pytest.raises(RetryLaterError, match="changed since this pass read it"):
        applier._apply_if_changed((namespace, "fenced"), json.loads(json.dumps(manifest)))
    assert cluster.apps.read_namespaced_deployment("fenced", namespace).spec.replicas == 0

    def applied_from_a_fresh_view() -> bool:
        """The controller-manager writes the Deployment's status too: a view read just before
        may be passed again by the time the apply lands, so read and apply until one lands."""
        cached = kube.get("Deployment", namespace, "fenced")
        assert cached is not None
        cache.upsert("Deployment", cached)
        try:
            applier._apply_if_changed((namespace, "fenced"), json.loads(json.dumps(manifest)))
        except RetryLaterError:
            return False
        return True

    wait_for(applied_from_a_fresh_view, 30, interval=0.1, what="an apply from a fresh view landing")
    assert cluster.apps.read_namespaced_deployment("fenced", namespace).spec.replicas == 1

    pod_body = {"metadata": {"name": "gated"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    seen = cluster.core.create_namespaced_pod(namespace, pod_body).metadata.resource_version
    cluster.core.patch_namespaced_pod("gated", namespace, {"metadata": {"labels": {"moved": "on"}}})
    writes = Writes(kube)
    assert writes.open_model_gate(namespace, "gated", "available", seen) is None
    assert LABEL_MODEL_AVAILABLE not in (
        cluster.core.read_namespaced_pod("gated", namespace).metadata.labels or {}
    )

    def opened_from_a_fresh_view() -> dict[str, Any] | None:
        """The scheduler and kwok write the pod too: read and patch until one lands."""
        fresh = cluster.core.read_namespaced_pod("gated", namespace).metadata.resource_version
        return writes.open_model_gate(namespace, "gated", "available", fresh)

    opened = wait_for(
        opened_from_a_fresh_view, 30, interval=0.1, what="a gate patch from a fresh view landing"
    )
    assert opened["metadata"]["labels"][LABEL_MODEL_AVAILABLE] == "true"
