"""Custom PromQL metrics gating a canary, asked of a real Prometheus scraping the model servers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from testbed.modelserver.traffic import TrafficDriver
from testbed.support.wait import holds_for, wait_for

from .conftest import Cluster, Operator
from .test_canary import canary, canary_sample, serving_v1
from .test_validation import changed

pytestmark = pytest.mark.timeout(240)

REQUESTS = ':tensorflow:serving:request_count{namespace="{{namespace}}",name="{{name}}",version="{{version}}"'
# The version's share of OK answers: a "quality" metric the built-in checks do not see here.
OK_RATIO: dict[str, Any] = {
    "name": "ok-ratio",
    "query": f'sum(rate({REQUESTS},status="OK"}}[{{{{window}}}}])) / sum(rate({REQUESTS}}}[{{{{window}}}}]))',
    "min": 0.9,
    "maxDropVsStable": 0.05,
}
NO_DATA: dict[str, Any] = {
    "name": "no-data",
    "query": 'sum(never_exported_total{version="{{version}}"})',
    "min": 0,
}


def metrics_analysis(address: str, *metrics: dict[str, Any]) -> dict[str, Any]:
    """Only the custom metrics judge: no built-in thresholds; checks every 3s over 1s scrapes."""
    return {
        "interval": "3s",
        "failureLimit": 2,
        "minRequests": 5,
        "window": "20s",
        "prometheus": {"address": address},
        "metrics": list(metrics),
    }


def with_metrics(*metrics: dict[str, Any], prometheus: bool = True) -> dict[str, Any]:
    analysis: dict[str, Any] = {"metrics": list(metrics)}
    if prometheus:
        analysis["prometheus"] = {"address": "http://prometheus.monitoring:9090"}
    return changed(rollout={"analysis": analysis})


REFUSED = [
    (
        "without prometheus (CEL)",
        with_metrics(OK_RATIO, prometheus=False),
        "metrics need analysis.prometheus",
    ),
    (
        "a name given twice (CEL)",
        with_metrics(OK_RATIO, {**NO_DATA, "name": "ok-ratio"}),
        "metrics names must be unique",
    ),
    ("no bound (CEL)", with_metrics({"name": "a", "query": NO_DATA["query"]}), "a metric needs a bound"),
    (
        "min above max (CEL)",
        with_metrics({**NO_DATA, "min": 2, "max": 1}),
        "spec.rollout.analysis.metrics[0].min",
    ),
    (
        "a query without {{version}} (CEL)",
        with_metrics({**NO_DATA, "query": "sum(up)"}),
        "query must select the version with {{version}}",
    ),
    (
        "a placeholder the operator does not fill in",
        with_metrics({**NO_DATA, "query": 'm{version="{{version}}",model="{{model}}"}'}),
        "spec.rollout.analysis.metrics[0].query",
    ),
    (
        "a name that is not a DNS label",
        with_metrics({**NO_DATA, "name": "No Data"}),
        "spec.rollout.analysis.metrics[0].name",
    ),
    (
        "more than 8",
        with_metrics(*({**NO_DATA, "name": f"m{i}"} for i in range(9))),
        "spec.rollout.analysis.metrics",
    ),
]


@pytest.mark.parametrize(("body", "field"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_the_api_server_refuses_metrics_that_cannot_be_judged(
    cluster: Cluster, namespace: str, body: dict[str, Any], field: str
) -> None:
    with pytest.raises(ApiException) as excinfo:
        cluster.create_md(namespace, body)
    assert excinfo.value.status == 422
    assert field in excinfo.value.body, excinfo.value.body


def test_the_api_server_accepts_metrics_with_promql_braces(cluster: Cluster, namespace: str) -> None:
    created = cluster.create_md(namespace, with_metrics(OK_RATIO, NO_DATA))
    metrics = created["spec"]["rollout"]["analysis"]["metrics"]
    assert [m["name"] for m in metrics] == ["ok-ratio", "no-data"]
    assert metrics[0]["query"] == OK_RATIO["query"]


def last_check(cluster: Cluster, namespace: str) -> dict[str, Any]:
    state = canary(cluster, namespace) or {}
    check: dict[str, Any] = state.get("analysis", {}).get("lastCheck") or {}
    return check


def test_a_metric_without_data_holds_the_canary_and_a_passing_one_promotes(
    cluster: Cluster,
    namespace: str,
    operator: Operator,
    prometheus: str,
    traffic: Callable[..., TrafficDriver],
) -> None:
    body = canary_sample(analysis=metrics_analysis(prometheus, OK_RATIO, NO_DATA))
    serving_v1(cluster, namespace, body)
    traffic()
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})

    def both_measured() -> dict[str, Any] | None:
        check = last_check(cluster, namespace)
        results = {m["name"]: m for m in check.get("metrics", [])}
        ok = results.get("ok-ratio", {})
        return check if "value" in ok and "stableValue" in ok else None

    check = wait_for(both_measured, 90, what="the custom metrics measured on the canary")
    results = {m["name"]: m for m in check["metrics"]}
    assert results["ok-ratio"]["result"] == "Passed", check
    # Measured by Prometheus for each version, and within the metric's bounds.
    value, stable_value = results["ok-ratio"]["value"], results["ok-ratio"]["stableValue"]
    assert value >= OK_RATIO["min"], check
    assert stable_value - value <= OK_RATIO["maxDropVsStable"], check
    assert results["no-data"] == {"name": "no-data", "result": "Inconclusive"}
    assert check["verdict"] == "Inconclusive"
    assert "metric no-data no data" in check["message"]
    healthy = next(
        c for c in cluster.get_md(namespace, "mnist")["status"]["conditions"] if c["type"] == "CanaryHealthy"
    )
    assert healthy["reason"] == "Inconclusive"
    assert "metric no-data no data" in healthy["message"]

    def held() -> bool:
        state = canary(cluster, namespace)
        return (
            state is not None and state["step"] == 0 and last_check(cluster, namespace)["verdict"] != "Passed"
        )

    holds_for(held, 8, what="the canary held at its first step while a metric has no data")

    # Without the metric that has no data, the same canary passes its steps and is promoted.
    analysis = metrics_analysis(prometheus, OK_RATIO)
    cluster.patch_md(namespace, "mnist", {"spec": {"rollout": {"analysis": analysis}}})
    md = cluster.wait_phase(namespace, "mnist", "Ready", timeout=120)
    assert md["status"]["stable"]["version"] == 2
    assert md["status"]["history"][-1]["result"] == "Promoted"


def test_a_failing_metric_rolls_the_canary_back(
    cluster: Cluster,
    namespace: str,
    operator: Operator,
    prometheus: str,
    traffic: Callable[..., TrafficDriver],
) -> None:
    serving_v1(cluster, namespace, canary_sample(analysis=metrics_analysis(prometheus, OK_RATIO)))
    traffic(inputs=(1.0, 9.0))  # version 3 refuses inputs >= 5: half of these; version 1 none
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 3}}})
    md = cluster.wait_phase(namespace, "mnist", "Degraded", timeout=90)
    entry = md["status"]["history"][-1]
    assert entry["result"] == "RolledBack"
    assert entry["version"] == 3
    # The metric alone decided (no built-in thresholds), against the stable's value.
    assert "metric ok-ratio" in entry["reason"], entry
    assert "below the stable's 1" in entry["reason"], entry
    assert md["status"]["stable"]["version"] == 1
