"""The Prometheus servers an analysis may ask are the admin's (MODELDEPLOY_PROMETHEUS_ALLOWED):
an address outside the list is never asked, and what a failed answer says never reaches
status, where the tenant reads it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from modeldeploy.api.names import KIND
from modeldeploy.api.spec import Analysis
from modeldeploy.api.status import CheckResult, Counters, Verdict
from modeldeploy.control.kinds import new_cache
from modeldeploy.probes import analysis as probe_analysis
from modeldeploy.probes.providers import Target, prometheus_refusal
from modeldeploy.rollout.types import Check
from tests.support.scripted_http import ScriptedServer

from .test_canary import SPEC
from .test_reconcile import NOW, canary_resource, deployment, pod, reconciler

pytestmark = pytest.mark.timeout(30)
SECRET = "internal-token-7f3a"  # what another service's error page might carry


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("http://prometheus.monitoring:9090", ["http://prometheus.monitoring:9090"]),
        ("http://prometheus.monitoring:9090/", ["http://prometheus.monitoring:9090"]),
        ("https://metrics.example/prom/team-a", ["https://metrics.example/prom"]),
        ("http://PROMETHEUS:80", ["http://prometheus"]),
        ("http://127.0.0.1:41234", ["http://127.0.0.1:"]),  # an entry ending in ":" admits any port
    ],
)
def test_an_address_the_admin_listed_is_admitted(address: str, allowed: list[str]) -> None:
    assert prometheus_refusal(address, allowed) is None


@pytest.mark.parametrize(
    "address",
    [
        "http://169.254.169.254",  # the cloud's metadata service
        "http://kubernetes.default.svc:443",
        "http://prometheus.monitoring:9091",  # another port of the listed host
        "https://prometheus.monitoring:9090",  # another scheme
        "http://prometheus.monitoring.evil.example:9090",  # the listed host as a prefix
        "http://prometheus.monitoring:9090@169.254.169.254",  # the listed host as credentials
        "http://metrics.example/prometheus",  # a sibling of the listed path
        "http://metrics.example/prom/../admin",  # resolved upwards by the server
        "http://metrics.example/prom/%2e%2e/admin",
    ],
)
def test_an_address_outside_the_list_is_refused(address: str) -> None:
    allowed = ["http://prometheus.monitoring:9090", "http://metrics.example/prom"]
    refusal = prometheus_refusal(address, allowed)
    assert refusal is not None
    assert refusal.startswith("PrometheusNotAllowed:")
    assert prometheus_refusal(address, []) is not None, "nothing is admitted by default"


def canary_with_prometheus(address: str) -> dict[str, object]:
    return canary_resource({"interval": "5s", "minRequests": 1, "prometheus": {"address": address}})


def test_a_pass_never_asks_an_address_outside_the_list_and_says_why() -> None:
    cache = new_cache()
    cache.upsert(KIND, canary_with_prometheus("http://169.254.169.254/latest"))
    cache.upsert("Pod", pod("mnist-v3-a", 3, "127.1.0.9", gated=True))
    cache.upsert("Deployment", deployment(2, replicas=1, serving=1))
    cache.upsert("Deployment", deployment(3, replicas=1, serving=1))
    passed = Check(
        CheckResult(at=NOW, verdict=Verdict.PASSED, requests=10, message="ok"), Counters(requests=1)
    )
    rec, kube, _, analysed = reconciler(cache, checks=[passed])
    rec.prometheus_allowed = ("http://prometheus.monitoring:9090",)
    rec.reconcile("ml", "mnist")
    assert analysed == [], "no query to an address the admin did not list"
    last = kube.statuses[-1]["canary"]["analysis"]["lastCheck"]
    assert last["verdict"] == "Inconclusive"
    assert last["message"].startswith("PrometheusNotAllowed: http://169.254.169.254/latest")
    healthy = next(c for c in kube.statuses[-1]["conditions"] if c["type"] == "CanaryHealthy")
    assert (healthy["status"], healthy["reason"]) == ("True", "PrometheusNotAllowed")


def test_a_listed_address_is_asked() -> None:
    cache = new_cache()
    cache.upsert(KIND, canary_with_prometheus("http://prometheus.monitoring:9090"))
    cache.upsert("Pod", pod("mnist-v3-a", 3, "127.1.0.9", gated=True))
    cache.upsert("Deployment", deployment(2, replicas=1, serving=1))
    cache.upsert("Deployment", deployment(3, replicas=1, serving=1))
    passed = Check(
        CheckResult(at=NOW, verdict=Verdict.PASSED, requests=10, message="ok"), Counters(requests=1)
    )
    rec, _, _, analysed = reconciler(cache, checks=[passed])
    rec.prometheus_allowed = ("http://prometheus.monitoring:9090",)
    rec.reconcile("ml", "mnist")
    assert len(analysed) == 1


@pytest.fixture
def replies() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    yield server
    server.stop()


def prometheus_check(replies: ScriptedServer) -> Check:
    spec = Analysis.model_validate(
        {**SPEC.model_dump(by_alias=True), "prometheus": {"address": replies.address}}
    )
    return probe_analysis.check(spec, Target("ml", "mnist", 2, (), 5.0), None, NOW)


@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_a_failed_answer_is_never_parsed_and_only_its_status_code_is_told(
    replies: ScriptedServer, status: int
) -> None:
    # Even a body that reads as a success: only a 200 answer is Prometheus's answer.
    replies.status = status
    success = {"status": "success", "data": {"result": [{"value": [1, "1000"]}]}, "error": SECRET}
    replies.bodies["/api/v1/query"] = json.dumps(success).encode()
    check = prometheus_check(replies)
    assert check.result.verdict is Verdict.INCONCLUSIVE
    assert check.result.message == f"Prometheus at {replies.address} answered HTTP {status}"


def test_an_error_answer_s_text_never_reaches_status(replies: ScriptedServer) -> None:
    replies.bodies["/api/v1/query"] = json.dumps({"status": "error", "error": SECRET}).encode()
    check = prometheus_check(replies)
    assert check.result.verdict is Verdict.INCONCLUSIVE
    assert SECRET not in check.result.message
