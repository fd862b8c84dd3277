"""The reconcile pass with fakes: a recording API client, a real cache, a scripted model
gate, analysis and clock. No cluster; the integration suite runs the same pass for real."""

from __future__ import annotations

import copy
import itertools
import json
import time
from typing import Any

import pytest

from modeldeploy.api.names import CONDITION_MODEL_AVAILABLE, KIND, LABEL_MODEL_AVAILABLE, SERVING_CONTAINER
from modeldeploy.api.status import CheckResult, Counters, Verdict
from modeldeploy.control.apply import Applier
from modeldeploy.control.kinds import new_cache
from modeldeploy.control.pod_checks import PreTrafficGate
from modeldeploy.control.reconcile import GATE_RETRY_SECONDS, Reconciler
from modeldeploy.kube.cache import ObjectCache
from modeldeploy.kube.transport import ApiError
from modeldeploy.kube.workqueue import RetryLaterError
from modeldeploy.probes.pretraffic import PreTrafficRunner
from modeldeploy.probes.providers import Target
from modeldeploy.rollout.types import Check

from .objects import SAMPLE_SPEC

UID = "0d7a1c58-0000-4000-8000-000000000001"
SLOW_PROBE_SECONDS = 0.3
NOW = "2026-01-01T00:00:00.000Z"


class FakeKube:
    """Records every request; answers like the API server would (resourceVersion grows)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.statuses: list[dict[str, Any]] = []
        self.fenced_with: list[str | None] = []
        self.gates_fenced_with: list[str | None] = []
        self.pods: dict[str, dict[str, Any]] = {}  # answered by a gate patch as patched
        self.existing: dict[tuple[str, str], dict[str, Any]] = {}  # (kind, name) -> what a get answers
        self._rv = itertools.count(100)

    def _stamp(self, body: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(body)
        out["metadata"]["resourceVersion"] = str(next(self._rv))
        return out

    def apply(self, manifest: dict[str, Any], field_manager: str = "modeldeploy") -> dict[str, Any]:
        self.calls.append(("apply", manifest["kind"], manifest["metadata"]["name"]))
        return self._stamp(manifest)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get", kind, name))
        return copy.deepcopy(self.existing.get((kind, name)))

    def delete(
        self, kind: str, namespace: str, name: str, preconditions: dict[str, str] | None = None
    ) -> bool:
        self.calls.append(("delete", kind, name))
        return True

    def open_model_gate(
        self, namespace: str, name: str, message: str, resource_version: str | None = None
    ) -> dict[str, Any] | None:
        self.calls.append(("gate", name, message))
        self.gates_fenced_with.append(resource_version)
        return self._gated(name, True)

    def close_model_gate(
        self, namespace: str, name: str, reason: str, message: str, resource_version: str | None = None
    ) -> dict[str, Any] | None:
        self.calls.append(("close", name, reason))
        self.gates_fenced_with.append(resource_version)
        return self._gated(name, False)

    def _gated(self, name: str, available: bool) -> dict[str, Any] | None:
        """The pod as the server answers a gate patch, for pods a test put in ``pods``."""
        if name not in self.pods:
            return None
        patched = self._stamp(self.pods[name])
        labels = patched["metadata"]["labels"]
        labels.pop(LABEL_MODEL_AVAILABLE, None)
        if available:
            labels[LABEL_MODEL_AVAILABLE] = "true"
        conditions = [c for c in patched["status"]["conditions"] if c["type"] != CONDITION_MODEL_AVAILABLE]
        status = "True" if available else "False"
        patched["status"]["conditions"] = [*conditions, {"type": CONDITION_MODEL_AVAILABLE, "status": status}]
        return patched

    def patch_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str | None = None
    ) -> dict[str, Any]:
        self.calls.append(("status", name))
        self.fenced_with.append(resource_version)
        self.statuses.append(status)
        return self._stamp({**resource(name), "status": status})

    def post_event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.calls.append(("event", type_, reason))


def resource(
    name: str = "mnist", spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "serving.modeldeploy.dev/v1alpha1",
        "kind": KIND,
        "metadata": {"name": name, "namespace": "ml", "uid": UID, "generation": 1, "resourceVersion": "1"},
        "spec": copy.deepcopy(spec or SAMPLE_SPEC),
    }
    if status is not None:
        body["status"] = status
    return body


def pod(name: str, version: int, ip: str, gated: bool = False) -> dict[str, Any]:
    labels = {
        "app.kubernetes.io/name": "mnist",
        "app.kubernetes.io/managed-by": "modeldeploy",
        "serving.modeldeploy.dev/version": str(version),
    }
    if gated:
        labels[LABEL_MODEL_AVAILABLE] = "true"
    return {
        "metadata": {"name": name, "namespace": "ml", "labels": labels, "resourceVersion": "5"},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "ContainersReady", "status": "True"},
            ],
        },
    }


def deployment(version: int, replicas: int, serving: int) -> dict[str, Any]:
    labels = {
        "app.kubernetes.io/name": "mnist",
        "app.kubernetes.io/managed-by": "modeldeploy",
        "serving.modeldeploy.dev/version": str(version),
    }
    return {
        "metadata": {
            "name": f"mnist-v{version}",
            "namespace": "ml",
            "uid": f"uid-mnist-v{version}",
            "labels": labels,
            "generation": 1,
            "resourceVersion": "7",
            "ownerReferences": [{"uid": UID}],
        },
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": serving,
        },
    }


def reconciler(
    cache: ObjectCache, gate_open: bool = True, checks: list[Check] | None = None
) -> tuple[Reconciler, FakeKube, list[tuple[str, str, int]], list[Target]]:
    kube = FakeKube()
    asked: list[tuple[str, str, int]] = []
    analysed: list[Target] = []

    def gate(ip: str, model: str, version: int) -> bool:
        asked.append((ip, model, version))
        return gate_open

    def analyse(spec: Any, target: Target, previous: Counters | None, at: str) -> Check:
        analysed.append(target)
        return (checks or []).pop(0)

    # The fake answers both the pass's own requests and the applier's.
    applier = Applier(kube, cache)  # type: ignore[arg-type]
    rec = Reconciler(kube, cache, applier, clock=lambda: NOW, gate=gate, analyse=analyse)  # type: ignore[arg-type]
    return rec, kube, asked, analysed


def test_first_pass_applies_children_in_order_and_reports_pending() -> None:
    cache = new_cache()
    cache.upsert(KIND, resource())
    rec, kube, _, _ = reconciler(cache)
    assert rec.reconcile("ml", "mnist") is None
    applies = [c[1:] for c in kube.calls if c[0] == "apply"]
    assert applies == [("ConfigMap", "mnist-v3-config"), ("Deployment", "mnist-v3"), ("Service", "mnist")]
    assert kube.statuses[-1]["phase"] == "Pending"


def test_a_pass_that_finds_nothing_new_sends_nothing() -> None:
    cache = new_cache()
    cache.upsert(KIND, resource())
    rec, kube, _, _ = reconciler(cache)
    rec.reconcile("ml", "mnist")
    before = len(kube.calls)
    rec.reconcile("ml", "mnist")
    assert kube.calls[before:] == []


@pytest.mark.parametrize("edited", ["three", "2", ""])
def test_a_version_label_edited_by_hand_neither_stops_the_pass_nor_stays(edited: str) -> None:
    cache = new_cache()
    cache.upsert(KIND, resource())
    rec, kube, _, _ = reconciler(cache)
    rec.reconcile("ml", "mnist")
    live = copy.deepcopy(cache.get("Deployment", "ml", "mnist-v3"))
    assert live is not None
    live["metadata"]["labels"]["serving.modeldeploy.dev/version"] = edited
    live["metadata"]["resourceVersion"] = str(int(live["metadata"]["resourceVersion"]) + 1)
    cache.upsert("Deployment", live)
    before = len(kube.calls)
    rec.reconcile("ml", "mnist")
    assert ("apply", "Deployment", "mnist-v3") in kube.calls[before:]  # the label is put back
    assert ("delete", "Deployment", "mnist-v3") not in kube.calls
    repaired = cache.get("Deployment", "ml", "mnist-v3")
    assert repaired is not None
    assert repaired["metadata"]["labels"]["serving.modeldeploy.dev/version"] == "3"


def test_gate_opens_only_for_ready_pods_whose_version_is_available() -> None:
    cache = new_cache()
    cache.upsert(KIND, resource())
    cache.upsert("Pod", pod("mnist-v3-a", 3, "127.1.0.5"))
    cache.upsert("Pod", pod("mnist-v3-b", 3, "127.1.0.6", gated=True))  # already open: not asked again
    rec, kube, asked, _ = reconciler(cache, gate_open=True)
    rec.reconcile("ml", "mnist")
    assert asked == [("127.1.0.5", "mnist", 3)]
    assert ("gate", "mnist-v3-a", "TF Serving reports mnist version 3 AVAILABLE") in kube.calls

    closed, kube2, _, _ = reconciler(cache, gate_open=False)
    assert closed.reconcile("ml", "mnist") == GATE_RETRY_SECONDS
    assert not [c for c in kube2.calls if c[0] == "gate"]


def test_an_opened_gate_is_in_the_cache_before_its_watch_event_so_no_pass_asks_again() -> None:
    # Another change of the pod (kwok's, the kubelet's) can queue a pass before the watch
    # brings the gate patch back: it must not ask TF Serving and patch the gate again.
    cache = new_cache()
    cache.upsert(KIND, resource())
    waiting = pod("mnist-v3-a", 3, "127.1.0.5")
    waiting["spec"] = {"readinessGates": [{"conditionType": CONDITION_MODEL_AVAILABLE}]}
    cache.upsert("Pod", waiting)
    rec, kube, asked, _ = reconciler(cache, gate_open=True)
    kube.pods["mnist-v3-a"] = waiting
    rec.reconcile("ml", "mnist")
    rec.reconcile("ml", "mnist")
    assert asked == [("127.1.0.5", "mnist", 3)]
    assert [c[1] for c in kube.calls if c[0] == "gate"] == ["mnist-v3-a"]
    held = cache.get("Pod", "ml", "mnist-v3-a")
    assert held is not None
    assert held["metadata"]["labels"][LABEL_MODEL_AVAILABLE] == "true"


def test_spec_the_children_cannot_carry_touches_no_child() -> None:
    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["runtime"]["args"] = ["--port=9000"]
    cache = new_cache()
    cache.upsert(KIND, resource(spec=spec))
    rec, kube, _, _ = reconciler(cache)
    rec.reconcile("ml", "mnist")
    assert not [c for c in kube.calls if c[0] in ("apply", "delete")]
    degraded = next(c for c in kube.statuses[-1]["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "InvalidSpec")
    assert "spec.runtime.args" in degraded["message"]
    assert ("event", "Warning", "InvalidSpec") in kube.calls


def test_spec_the_models_refuse_is_reported_with_the_field() -> None:
    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["model"]["version"] = 0
    cache = new_cache()
    cache.upsert(KIND, resource(spec=spec))
    rec, kube, _, _ = reconciler(cache)
    assert rec.reconcile("ml", "mnist") is None
    assert [c[0] for c in kube.calls] == ["status", "event"]
    assert kube.statuses[-1]["phase"] == "Degraded"
    assert "spec.model.version" in kube.statuses[-1]["conditions"][-1]["message"]


def canary_resource(analysis: dict[str, Any]) -> dict[str, Any]:
    """The resource with version 2 serving and version 3's canary at its first step."""
    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["rollout"] = {"strategy": "Canary", "steps": [{"weight": 20, "pause": "5m"}], "analysis": analysis}
    canary = {
        "version": 3,
        "weight": 20,
        "replicas": 1,
        "readyReplicas": 1,
        "startedAt": "2025-12-31T23:59:00.000Z",
        "stepStartedAt": "2025-12-31T23:59:50.000Z",
        "lastProgressAt": "2025-12-31T23:59:50.000Z",
    }
    status = {"stable": {"version": 2, "replicas": 2, "readyReplicas": 2}, "canary": canary}
    return resource(spec=spec, status=status)


def canary_at_its_first_step(analysis: dict[str, Any]) -> ObjectCache:
    """The canary resource cached, with one gated pod of version 3."""
    cache = new_cache()
    cache.upsert(KIND, canary_resource(analysis))
    cache.upsert("Pod", pod("mnist-v3-a", 3, "127.1.0.9", gated=True))
    return cache


def test_due_check_reads_the_gated_canary_pods_and_keeps_its_counters() -> None:
    cache = canary_at_its_first_step({"interval": "5s", "minRequests": 1})
    cache.upsert("Pod", pod("mnist-v3-b", 3, "127.1.0.8"))  # gate closed: not analysed
    cache.upsert("Pod", pod("mnist-v2-a", 2, "127.1.0.7", gated=True))  # stable: not analysed
    cache.upsert("Deployment", deployment(2, replicas=1, serving=1))
    cache.upsert("Deployment", deployment(3, replicas=1, serving=1))
    result = CheckResult(at=NOW, verdict=Verdict.PASSED, requests=10, message="ok")
    rec, kube, _, analysed = reconciler(cache, gate_open=False, checks=[Check(result, Counters(requests=42))])
    rec.reconcile("ml", "mnist")
    assert [t.pods for t in analysed] == [(("mnist-v3-a", "127.1.0.9"),)]
    written = kube.statuses[-1]["canary"]["analysis"]
    assert written["passed"] == 1
    assert written["counters"]["requests"] == 42


def test_forgetting_a_resource_keeps_the_memo_of_a_similarly_named_one() -> None:
    cache = new_cache()
    cache.upsert(KIND, resource("mnist"))
    cache.upsert(KIND, resource("mnist-vision"))
    rec, kube, _, _ = reconciler(cache)
    rec.reconcile("ml", "mnist")
    rec.reconcile("ml", "mnist-vision")
    rec.forget("ml", "mnist")
    before = len(kube.calls)
    rec.reconcile("ml", "mnist-vision")
    assert kube.calls[before:] == []  # its memo survived: nothing re-applied


def test_a_child_the_server_refuses_shows_as_degraded_and_asks_for_backoff() -> None:
    import json

    import pytest

    from modeldeploy.kube.transport import ApiError
    from modeldeploy.kube.workqueue import RetryLaterError

    cache = new_cache()
    cache.upsert(KIND, resource())
    rec, kube, _, _ = reconciler(cache)

    def refuse(manifest: dict[str, Any], field_manager: str = "modeldeploy") -> dict[str, Any]:
        if manifest["kind"] == "Deployment":
            body = json.dumps({"message": "admission webhook denied: images must be signed"})
            raise ApiError(status=422, reason="Unprocessable Entity", body=body)
        return FakeKube.apply(kube, manifest, field_manager)

    kube.apply = refuse  # type: ignore[method-assign]
    with pytest.raises(RetryLaterError):
        rec.reconcile("ml", "mnist")
    degraded = next(c for c in kube.statuses[-1]["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "ApplyRejected"
    assert "Deployment mnist-v3" in degraded["message"]
    assert "images must be signed" in degraded["message"]
    assert ("event", "Warning", "ApplyRejected") in kube.calls


def test_a_namesake_another_owner_holds_is_not_taken_and_status_names_it() -> None:
    """A resource named like a Service someone else made: applied by force, the Service
    would become the resource's (and go with it). Nothing is written to it; Degraded says
    which child and who holds it."""
    cache = new_cache()
    cache.upsert(KIND, resource())
    rec, kube, _, _ = reconciler(cache)
    kube.existing[("Service", "mnist")] = {
        "metadata": {"name": "mnist", "namespace": "ml", "uid": "someone-else", "labels": {"app": "web"}}
    }
    with pytest.raises(RetryLaterError):
        rec.reconcile("ml", "mnist")
    assert ("apply", "Service", "mnist") not in kube.calls
    degraded = next(c for c in kube.statuses[-1]["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True"
    assert degraded["reason"] == "ChildOwnedByAnother"
    assert "Service mnist" in degraded["message"]
    assert ("event", "Warning", "ChildOwnedByAnother") in kube.calls


def test_the_operator_follows_the_api_servers_clock() -> None:
    import email.utils
    import time as clock

    from modeldeploy.api.times import parse_time
    from modeldeploy.control.writes import Writes
    from modeldeploy.kube.client import Kube

    kube = Kube(api=None, kinds={})  # type: ignore[arg-type]
    ahead = email.utils.formatdate(clock.time() + 300, usegmt=True)  # the server is 5 minutes ahead
    kube._note_server_time(ahead)
    skew = parse_time(Writes(kube).now()).timestamp() - clock.time()
    assert 299 < skew < 302
    # Sub-second differences (Date has whole seconds) do not move it: no jitter in step times.
    kube._note_server_time(email.utils.formatdate(clock.time() + 300.9, usegmt=True))
    assert abs(parse_time(Writes(kube).now()).timestamp() - clock.time() - skew) < 0.1
    # Clocks that agree within Date's resolution: the local clock, to the millisecond.
    same = Kube(api=None, kinds={})  # type: ignore[arg-type]
    same._note_server_time(email.utils.formatdate(clock.time(), usegmt=True))
    assert abs(parse_time(Writes(same).now()).timestamp() - clock.time()) < 0.05


def test_slow_pods_are_asked_at_once_not_one_after_another() -> None:
    cache = new_cache()
    cache.upsert(KIND, resource())
    for i in range(8):
        cache.upsert("Pod", pod(f"mnist-v3-{i}", 3, f"127.1.0.{10 + i}"))
    rec, kube, _, _ = reconciler(cache)

    def slow_gate(ip: str, model: str, version: int) -> bool:
        time.sleep(SLOW_PROBE_SECONDS)  # a pod that takes its time to answer
        return True

    rec.gate = slow_gate
    started = time.monotonic()
    assert rec.reconcile("ml", "mnist") is None
    elapsed = time.monotonic() - started
    assert len([c for c in kube.calls if c[0] == "gate"]) == 8
    # One after another the eight would take eight probe times.
    assert elapsed < 3 * SLOW_PROBE_SECONDS, elapsed


def test_a_pod_whose_serving_container_restarted_since_its_gate_opened_is_taken_out() -> None:
    cache = new_cache()
    cache.upsert(KIND, resource())
    restarted = pod("mnist-v3-a", 3, "127.1.0.5", gated=True)
    restarted["status"]["conditions"].append(
        {"type": CONDITION_MODEL_AVAILABLE, "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
    )
    restarted["status"]["containerStatuses"] = [
        {
            "name": SERVING_CONTAINER,
            "state": {"running": {"startedAt": "2026-01-01T00:05:00Z"}},
            "lastState": {"terminated": {"exitCode": 137, "finishedAt": "2026-01-01T00:04:59Z"}},
        }
    ]
    cache.upsert("Pod", restarted)
    rec, kube, asked, _ = reconciler(cache)
    assert rec.reconcile("ml", "mnist") == GATE_RETRY_SECONDS
    assert ("close", "mnist-v3-a", "ServingRestarted") in kube.calls
    assert asked == []  # asked again only once the pod's gate is seen closed


@pytest.mark.parametrize(
    ("read", "message"),
    [
        # Found with the manifest's RBAC: a 403 reading the ConfigMap must not end the pass.
        ("forbidden", "cannot read ConfigMap golden: 403 Forbidden"),
        ("missing", "ConfigMap golden key k not found"),
    ],
)
def test_a_golden_configmap_that_cannot_be_used_holds_the_pod_shut_and_says_so(
    read: str, message: str
) -> None:
    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["rollout"] = {"preTraffic": {"goldenRequests": {"configMapRef": {"name": "golden", "key": "k"}}}}
    cache = new_cache()
    cache.upsert(KIND, resource(spec=spec))
    pod_body = pod("mnist-v3-a", 3, "127.1.0.5")
    pod_body["metadata"]["uid"] = "pod-uid-a"
    cache.upsert("Pod", pod_body)
    rec, kube, _, _ = reconciler(cache, gate_open=True)
    sent: list[str] = []

    def pods_api(url: str, body: bytes | None) -> tuple[int, bytes]:
        sent.append(url)
        metadata: dict[str, Any] = {"metadata": {"signature_def": {"signature_def": {"serving_default": {}}}}}
        return 200, json.dumps(metadata).encode()

    def read_config_map(namespace: str, name: str) -> dict[str, Any] | None:
        if read == "forbidden":
            raise ApiError(status=403, reason="Forbidden")
        return None

    kube.read_config_map = read_config_map  # type: ignore[attr-defined]
    rec.pre_traffic = PreTrafficGate(PreTrafficRunner(request=pods_api))
    assert rec.reconcile("ml", "mnist") == GATE_RETRY_SECONDS
    assert not [c for c in kube.calls if c[0] == "gate"], "a pod opened without its golden requests"
    degraded = next(c for c in kube.statuses[-1]["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "PreTrafficBlocked"
    assert degraded["message"] == message
    assert not any(":predict" in url for url in sent)


def test_status_writes_are_fenced_and_a_conflict_recomputes_from_the_fresh_body() -> None:
    cache = new_cache()
    cache.upsert(KIND, resource())
    rec, kube, _, _ = reconciler(cache)
    rec.reconcile("ml", "mnist")
    assert kube.fenced_with == ["1"], "the write carries the version it was computed from"
    # Another writer (a replica leading now) wrote since: the server refuses with 409.
    newer = resource(status={"phase": "Ready"})
    newer["metadata"]["resourceVersion"] = "500"

    def conflict(
        namespace: str, name: str, status: dict[str, Any], resource_version: str | None = None
    ) -> None:
        raise ApiError(status=409, reason="Conflict")

    kube.patch_status = conflict  # type: ignore[assignment,method-assign]
    kube.read_model_deployment = lambda namespace, name: newer  # type: ignore[attr-defined]
    cache.upsert(
        KIND,
        resource(spec={**SAMPLE_SPEC, "replicas": 3})
        | {"metadata": {**resource()["metadata"], "resourceVersion": "400", "generation": 2}},
    )
    with pytest.raises(RetryLaterError):
        rec.reconcile("ml", "mnist")
    held = cache.get(KIND, "ml", "mnist")
    assert held is not None
    assert held["metadata"]["resourceVersion"] == "500"


def test_a_replica_that_stopped_leading_writes_nothing() -> None:
    cache = new_cache()
    cache.upsert(KIND, resource())
    rec, kube, _, _ = reconciler(cache)
    rec.leading = lambda: False
    assert rec.reconcile("ml", "mnist") is None
    assert not [c for c in kube.calls if c[0] in ("apply", "status", "delete")]


def failing_canary() -> tuple[ObjectCache, list[Check]]:
    """A canary of version 3 at its first step, whose next check fails: the pass rolls it back."""
    cache = canary_at_its_first_step({"interval": "5s", "minRequests": 1, "failureLimit": 1})
    cache.upsert("Deployment", deployment(2, replicas=2, serving=2))
    cache.upsert("Deployment", deployment(3, replicas=1, serving=1))
    failed = CheckResult(at=NOW, verdict=Verdict.FAILED, requests=10, message="success rate 0.5 < 0.99")
    return cache, [Check(failed, Counters(requests=10, errors=5))]


def test_a_rollback_is_recorded_before_the_canary_is_removed() -> None:
    cache, checks = failing_canary()
    rec, kube, _, _ = reconciler(cache, checks=checks)
    rec.reconcile("ml", "mnist")
    writes = [c for c in kube.calls if c[0] in ("status", "delete", "apply")]
    assert writes[0] == ("status", "mnist"), f"the outcome must be written first: {writes}"
    assert ("delete", "Deployment", "mnist-v3") in writes
    recorded = kube.statuses[0]
    assert recorded["failedVersions"] == [3]
    assert recorded["history"][-1]["result"] == "RolledBack"
    assert "canary" not in recorded
    assert kube.fenced_with[0] == "1", "the outcome's write is fenced by the version it was computed from"


def test_a_rollback_whose_record_is_refused_removes_nothing() -> None:
    cache, checks = failing_canary()
    rec, kube, _, _ = reconciler(cache, checks=checks)

    def conflict(
        namespace: str, name: str, status: dict[str, Any], resource_version: str | None = None
    ) -> None:
        raise ApiError(status=409, reason="Conflict")

    kube.patch_status = conflict  # type: ignore[assignment,method-assign]
    kube.read_model_deployment = lambda namespace, name: None  # type: ignore[attr-defined]
    with pytest.raises(RetryLaterError):
        rec.reconcile("ml", "mnist")
    assert not [c for c in kube.calls if c[0] in ("apply", "delete")], kube.calls


def test_an_abort_acts_before_any_pod_is_asked_anything() -> None:
    """Probes are bounded but not free: a pass whose canary ends whatever the pods say
    (an abort, the progress deadline) ends it without waiting on a gate, check or scrape."""
    cache, _ = failing_canary()
    body = cache.get(KIND, "ml", "mnist")
    assert body is not None
    body = copy.deepcopy(body)
    body["metadata"]["annotations"] = {"serving.modeldeploy.dev/abort": "t1"}
    body["status"]["handledActions"] = {"abort": "t0"}  # an earlier abort, handled: this one is new
    cache.upsert(KIND, body | {"metadata": {**body["metadata"], "resourceVersion": "2"}})
    cache.upsert("Pod", pod("mnist-v3-b", 3, "127.1.0.8"))  # a gate that would be asked

    def never(*args: Any) -> Any:
        raise AssertionError("a pod was asked before the abort acted")

    rec, kube, _, _ = reconciler(cache)
    rec.gate, rec.analyse = never, never
    rec.reconcile("ml", "mnist")
    assert kube.statuses[0]["history"][-1]["result"] == "Aborted"
    assert ("delete", "Deployment", "mnist-v3") in kube.calls


def test_a_sharded_pass_records_its_shard_and_holder_and_a_takeover_once() -> None:
    cache = new_cache()
    cache.upsert(KIND, resource())
    rec, kube, _, _ = reconciler(cache)
    rec.placement = lambda namespace, name: (5, "replica-a")
    rec.reconcile("ml", "mnist")
    assert (kube.statuses[-1]["shard"], kube.statuses[-1]["shardHolder"]) == (5, "replica-a")
    assert ("event", "Normal", "ShardTakenOver") not in kube.calls  # nobody held it before
    rec.placement = lambda namespace, name: (5, "replica-b")
    before = len(kube.calls)
    rec.reconcile("ml", "mnist")
    assert kube.calls[before:] == [("status", "mnist"), ("event", "Normal", "ShardTakenOver")]
    assert kube.statuses[-1]["shardHolder"] == "replica-b"
    before = len(kube.calls)
    rec.reconcile("ml", "mnist")
    assert kube.calls[before:] == []  # the holder's next pass writes nothing: no event again


def test_one_shard_writes_no_shard_into_the_status() -> None:
    cache = new_cache()
    cache.upsert(KIND, resource())
    rec, kube, _, _ = reconciler(cache)
    rec.reconcile("ml", "mnist")
    assert "shard" not in kube.statuses[-1]
    assert "shardHolder" not in kube.statuses[-1]
