"""Webhook gates on the real control plane, with real traffic and real loopback receivers:
2xx answers promote, a refusal holds or rolls back as configured, a hanging gate is cut at
its timeout without holding the operator, and a URL the admin did not allow is never called."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from testbed.modelserver.traffic import TrafficDriver
from testbed.support.wait import holds_for, wait_for
from tests.support.gate_receiver import GateReceiver

from .conftest import Cluster, Operator
from .test_canary import FAST_ROLLOUT, canary, canary_sample, plugin, serving_v1

pytestmark = pytest.mark.timeout(180)

ALLOWED = "http://127.0.0.1:"  # any port of the tests' loopback receivers


@pytest.fixture
def receiver() -> Iterator[GateReceiver]:
    started = GateReceiver()
    yield started
    started.stop()


ONE_STEP = [{"weight": 50, "pause": "1s"}]  # where the second step's gate is not the point


def gated(*webhooks: dict[str, Any], steps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The fast canary sample with these webhook gates (and these steps)."""
    analysis = {**FAST_ROLLOUT["analysis"], "webhooks": list(webhooks)}
    return canary_sample(analysis=analysis, steps=steps or FAST_ROLLOUT["steps"])


def gate(name: str, url: str, at: str, on_failure: str = "Rollback", timeout: int = 10) -> dict[str, Any]:
    return {"name": name, "url": url, "at": at, "timeoutSeconds": timeout, "onFailure": on_failure}


def progressing(cluster: Cluster, namespace: str) -> dict[str, Any]:
    return cluster.condition(namespace, "mnist", "Progressing") or {}


def test_gates_that_answer_2xx_are_asked_at_each_point_and_the_canary_promotes(
    cluster: Cluster,
    namespace: str,
    start_operator: Callable[..., Operator],
    traffic: Callable[..., TrafficDriver],
    receiver: GateReceiver,
) -> None:
    start_operator(MODELDEPLOY_WEBHOOK_ALLOWED=ALLOWED)
    body = gated(
        gate("sign-off", receiver.url("/pre"), "PreTraffic"),
        gate("load-test", receiver.url("/step"), "Step"),
        gate("approve", receiver.url("/promote"), "PrePromotion"),
    )
    serving_v1(cluster, namespace, body)
    traffic()
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    md = cluster.wait_phase(namespace, "mnist", "Ready", timeout=90)
    assert md["status"]["stable"]["version"] == 2
    assert md["status"]["history"][-1]["result"] == "Promoted"
    asked = [(path, b["at"], b["step"], b["weight"]) for path, b in receiver.received]
    assert asked == [
        ("/pre", "PreTraffic", 0, 20),
        ("/step", "Step", 1, 50),
        ("/promote", "PrePromotion", 2, 100),
    ]
    first = receiver.received[0][1]
    assert first["namespace"] == namespace
    assert (first["name"], first["model"], first["stableVersion"], first["canaryVersion"]) == (
        "mnist",
        "mnist",
        1,
        2,
    )
    assert (first["webhook"], first["steps"], first["kind"]) == ("sign-off", 2, "ModelDeployment")


def test_a_refusing_hold_gate_keeps_the_canary_out_of_service_until_it_says_yes(
    cluster: Cluster,
    namespace: str,
    start_operator: Callable[..., Operator],
    traffic: Callable[..., TrafficDriver],
    receiver: GateReceiver,
) -> None:
    start_operator(MODELDEPLOY_WEBHOOK_ALLOWED=ALLOWED)
    receiver.answer("/freeze", 500, b"change freeze until 12:00\nTraceback (most recent call last): ...\n")
    serving_v1(
        cluster,
        namespace,
        gated(gate("freeze", receiver.url("/freeze"), "PreTraffic", "Hold"), steps=ONE_STEP),
    )
    driver = traffic()
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    held = wait_for(
        lambda: (c := progressing(cluster, namespace)).get("reason") == "WebhookRefused" and c,
        30,
        what="the canary held by its gate",
    )
    assert "(freeze: HTTP 500: change freeze until 12:00)" in held["message"]
    assert "Traceback" not in held["message"]
    # Held: asked again every interval, and no request reaches the canary meanwhile.
    wait_for(lambda: len(receiver.bodies("/freeze")) >= 3, 20, what="the gate asked again")
    holds_for(lambda: driver.counts().get(2, 0) == 0, 2, what="no traffic to the held canary")
    assert (canary(cluster, namespace) or {}).get("stepStartedAt") is None
    shown = plugin(cluster, namespace, "get", "mnist")
    assert "Webhook freeze" in shown
    assert "Failed before any traffic" in shown
    assert "HTTP 500: change freeze until 12:00" in shown

    receiver.answer("/freeze", 204)
    md = cluster.wait_phase(namespace, "mnist", "Ready", timeout=90)
    assert md["status"]["stable"]["version"] == 2
    assert driver.counts().get(2, 0) > 0


def test_a_refusing_rollback_gate_rolls_back_with_the_answers_first_line(
    cluster: Cluster,
    namespace: str,
    start_operator: Callable[..., Operator],
    traffic: Callable[..., TrafficDriver],
    receiver: GateReceiver,
) -> None:
    start_operator(MODELDEPLOY_WEBHOOK_ALLOWED=ALLOWED)
    receiver.answer("/load", 500, b"load test failed: p99 900ms > 250ms\nat step 3 of the scenario\n")
    serving_v1(cluster, namespace, gated(gate("load-test", receiver.url("/load"), "Step")))
    driver = traffic()
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    md = cluster.wait_phase(namespace, "mnist", "Degraded", timeout=60)
    entry = md["status"]["history"][-1]
    assert entry["result"] == "RolledBack"
    assert entry["reason"] == (
        "WebhookRefused: webhook load-test refused version 2 before step 2: "
        "HTTP 500: load test failed: p99 900ms > 250ms"
    )
    degraded = cluster.condition(namespace, "mnist", "Degraded") or {}
    assert degraded.get("reason") == "WebhookRefused"
    assert md["status"]["failedVersions"] == [2]
    assert driver.counts().get(2, 0) > 0, "the first step took traffic: the gate stands before the second"
    assert len(receiver.bodies("/load")) == 1


def test_a_hanging_gate_is_cut_at_its_timeout_and_holds_no_worker(
    cluster: Cluster,
    namespace: str,
    start_operator: Callable[..., Operator],
    receiver: GateReceiver,
) -> None:
    # One reconcile worker: were the call made on it, no other resource would move meanwhile.
    start_operator(MODELDEPLOY_WEBHOOK_ALLOWED=ALLOWED, MODELDEPLOY_WORKERS="1")
    receiver.hanging.add("/hang")
    serving_v1(
        cluster,
        namespace,
        gated(gate("slow", receiver.url("/hang"), "PreTraffic", timeout=6), steps=ONE_STEP),
    )
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    wait_for(lambda: receiver.bodies("/hang"), 30, what="the gate called")
    called = time.monotonic()
    other = canary_sample("other")
    cluster.create_md(namespace, other)
    wait_for(
        lambda: (cluster.get_md(namespace, "other").get("status") or {}).get("observedGeneration"),
        5,
        what="another resource reconciled while the gate hangs",
    )
    assert time.monotonic() - called < 6, "the other resource waited for the hanging gate"
    md = cluster.wait_phase(namespace, "mnist", "Degraded", timeout=30)
    took = time.monotonic() - called
    assert 5 <= took < 20, f"rolled back {took:.1f}s after the call, with a 6 s timeout"
    reason = md["status"]["history"][-1]["reason"]
    assert reason.startswith("WebhookRefused: webhook slow refused version 2 before any traffic: ")
    assert "no whole reply within 6s" in reason


def test_a_url_the_admin_did_not_allow_is_never_called(
    cluster: Cluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    start_operator(MODELDEPLOY_WEBHOOK_ALLOWED="http://127.0.0.1:")
    elsewhere = GateReceiver("127.0.0.3")  # listening, so a call would be seen
    try:
        serving_v1(
            cluster, namespace, gated(gate("audit", elsewhere.url("/audit"), "PreTraffic"), steps=ONE_STEP)
        )
        cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
        md = cluster.wait_phase(namespace, "mnist", "Degraded", timeout=60)
        reason = md["status"]["history"][-1]["reason"]
        assert reason.startswith("WebhookNotAllowed: webhook audit refused version 2 before any traffic: ")
        assert elsewhere.url("/audit") in reason
        assert (cluster.condition(namespace, "mnist", "Degraded") or {}).get("reason") == "WebhookNotAllowed"
        assert elsewhere.received == []
    finally:
        elsewhere.stop()
