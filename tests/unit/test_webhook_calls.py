"""Webhook gates in the reconcile pass: a gate is called off the pass and its answer read by a
later one, the canary's pods stay out of service until the PreTraffic gates pass, and a URL
the admin did not allow is never called."""

from __future__ import annotations

import copy
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from modeldeploy.api.names import KIND
from modeldeploy.api.webhook_gates import GatePoint
from modeldeploy.control.kinds import new_cache
from modeldeploy.control.reconcile import Reconciler
from modeldeploy.control.webhook_calls import WebhookCalls
from modeldeploy.kube.cache import ObjectCache
from modeldeploy.probes.webhook_gate import GateAnswer
from modeldeploy.rollout.webhooks import WebhookCall

from .objects import SAMPLE_SPEC
from .test_reconcile import NOW, deployment, pod, reconciler, resource

pytestmark = pytest.mark.timeout(30)

URL = "http://127.0.0.1:9000/hooks/sign-off"


def gated_spec(url: str = URL, on_failure: str = "Rollback") -> dict[str, Any]:
    spec = copy.deepcopy(SAMPLE_SPEC)
    webhook = {
        "name": "sign-off",
        "url": url,
        "at": "PreTraffic",
        "timeoutSeconds": 5,
        "onFailure": on_failure,
    }
    spec["rollout"] = {
        "strategy": "Canary",
        "steps": [{"weight": 20, "pause": "5m"}],
        "analysis": {"interval": "5s", "webhooks": [webhook]},
    }
    return spec


def canary_before_traffic(url: str = URL) -> ObjectCache:
    """Version 2 serves; version 3's canary has one pod, loaded, its model gate still shut."""
    spec = gated_spec(url)
    canary = {"version": 3, "weight": 20, "replicas": 1, "startedAt": NOW, "lastProgressAt": NOW}
    status = {
        "observedGeneration": 1,
        "stable": {"version": 2, "replicas": 2, "readyReplicas": 2},
        "canary": canary,
    }
    cache = new_cache()
    cache.upsert(KIND, resource(spec=spec, status=status))
    cache.upsert("Pod", pod("mnist-v3-a", 3, "127.1.0.9"))
    cache.upsert("Deployment", deployment(2, replicas=2, serving=2))
    cache.upsert("Deployment", deployment(3, replicas=1, serving=0))
    return cache


def pass_again(rec: Reconciler, kube: Any, cache: ObjectCache, url: str = URL) -> None:
    """Another pass over the status the last one wrote (the fake API answers its own spec)."""
    body = resource(spec=gated_spec(url), status=kube.statuses[-1])
    body["metadata"]["resourceVersion"] = str(1000 + len(kube.statuses))  # newer than the fake's
    cache.upsert(KIND, body)
    for version, replicas in ((2, 2), (3, 1)):  # as the API server has them, not the fake's echo
        child = deployment(version, replicas=replicas, serving=replicas if version == 2 else 0)
        child["metadata"]["resourceVersion"] = body["metadata"]["resourceVersion"]
        cache.upsert("Deployment", child)
    rec.reconcile("ml", "mnist")


class Gate:
    """A stand-in for the HTTP call (the real one is tested against loopback servers)."""

    def __init__(self, answer: GateAnswer, hang: threading.Event | None = None) -> None:
        self.answer, self.hang = answer, hang
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, url: str, body: bytes, timeout: float) -> GateAnswer:
        self.bodies.append(json.loads(body))
        if self.hang is not None:
            self.hang.wait(timeout)
        return self.answer


def test_the_canary_pods_open_only_after_the_pre_traffic_gate_said_yes() -> None:
    cache = canary_before_traffic()
    rec, kube, asked, _ = reconciler(cache)
    gate = Gate(GateAnswer(True))
    rec.webhooks = WebhookCalls(("http://127.0.0.1:9000/hooks",), clock=lambda: NOW, ask=gate)
    rec.reconcile("ml", "mnist")
    assert [b["at"] for b in gate.bodies] == ["PreTraffic"]
    assert (gate.bodies[0]["canaryVersion"], gate.bodies[0]["stableVersion"]) == (3, 2)
    assert asked == [], "nothing is asked of a canary pod held for its gate"
    progressing = {c["type"]: c for c in kube.statuses[-1]["conditions"]}["Progressing"]
    assert progressing["reason"] == "WaitingForWebhook"
    assert "waiting before any traffic for webhook(s) sign-off" in progressing["message"]
    pass_again(rec, kube, cache)  # reads the answer: status records the yes
    [record] = kube.statuses[-1]["canary"]["analysis"]["webhooks"]
    assert (record["name"], record["result"]) == ("sign-off", "Passed")
    pass_again(rec, kube, cache)
    assert ("127.1.0.9", "mnist", 3) in asked, "the pod's model gate is asked once the gate passed"
    assert len(gate.bodies) == 1, "a gate that said yes is not asked again"


def test_a_url_the_admin_did_not_allow_is_never_called_and_rolls_back_naming_why() -> None:
    cache = canary_before_traffic(url="http://169.254.169.254/latest/meta-data")
    rec, kube, _, _ = reconciler(cache)
    gate = Gate(GateAnswer(True))
    rec.webhooks = WebhookCalls(("http://127.0.0.1:9000/hooks",), clock=lambda: NOW, ask=gate)
    rec.reconcile("ml", "mnist")
    pass_again(rec, kube, cache, url="http://169.254.169.254/latest/meta-data")
    assert gate.bodies == []
    [entry] = kube.statuses[-1]["history"]
    assert entry["result"] == "RolledBack"
    assert entry["reason"].startswith(
        "WebhookNotAllowed: webhook sign-off refused version 3 before any traffic"
    )
    assert "169.254.169.254" in entry["reason"]


def test_a_hanging_gate_holds_no_reconcile_worker() -> None:
    cache = canary_before_traffic()
    rec, _, _, _ = reconciler(cache)
    release = threading.Event()
    gate = Gate(GateAnswer(False, "no whole reply within 5s"), hang=release)
    queued: list[tuple[str, str]] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        rec.webhooks = WebhookCalls(
            ("http://127.0.0.1:9000/hooks",),
            executor=pool,
            on_done=lambda namespace, name: queued.append((namespace, name)),
            clock=lambda: NOW,
            ask=gate,
        )
        started = time.monotonic()
        rec.reconcile("ml", "mnist")
        rec.reconcile("ml", "mnist")  # the call is under way: not started twice
        took = time.monotonic() - started
        assert took < 2, f"two passes took {took:.1f}s beside a hanging gate"
        assert queued == []
        release.set()
    assert queued == [("ml", "mnist")], "the resource is queued when the call ends"
    assert len(gate.bodies) == 1


def test_a_call_that_raised_is_dropped_and_made_again_when_the_plan_asks() -> None:
    attempts: list[str] = []

    def broken(url: str, body: bytes, timeout: float) -> GateAnswer:
        attempts.append(url)
        if len(attempts) == 1:
            raise RuntimeError("a bug, not an answer")
        return GateAnswer(True)

    ended = threading.Semaphore(0)
    call = WebhookCall(3, "sign-off", URL, 5, GatePoint.PRE_TRAFFIC, 0, {"name": "mnist"})
    with ThreadPoolExecutor(max_workers=1) as pool:
        calls = WebhookCalls(
            ("http://127.0.0.1:9000/hooks",),
            executor=pool,
            on_done=lambda namespace, name: ended.release(),
            clock=lambda: NOW,
            ask=broken,
        )
        calls.start("ml", "mnist", (call,))
        assert ended.acquire(timeout=5)
        assert calls.answers("ml", "mnist") == (), "an error is logged, never an answer"
        calls.start("ml", "mnist", (call,))
        assert ended.acquire(timeout=5)
        [answer] = calls.answers("ml", "mnist")
    assert (answer.name, answer.allowed, answer.answered_at) == ("sign-off", True, NOW)
    assert calls.answers("ml", "mnist") == (), "an answer is read once"
