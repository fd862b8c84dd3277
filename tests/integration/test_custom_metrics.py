"""Custom PromQL metrics gating a canary, asked of a real Prometheus scraping the model servers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from testbed.modelserver.traffic import TrafficDriver
from testbed.support.wait import holds_for, wait_for

from .conftest import Cluster, Operator
from .test_canary import canary, canary_sample, serving_v1

pytestmark = pytest.mark.timeout(240)

REQUESTS = ':tensorflow:serving:request_count{namespace="{{namespace}}",name="{{name}}",version="{{version}}"'
# The version's share of OK answers: a "quality" metric the built-in checks do not see here.
OK_RATIO = {
    "name": "ok-ratio",
    "query": f'sum(rate({REQUESTS},status="OK"}}[{{{{window}}}}])) / sum(rate({REQUESTS}}}[{{{{window}}}}]))',
    "min": 0.9,
    "maxDropVsStable": 0.05,
}
NO_DATA = {"name": "no-data", "query": 'sum(never_exported_total{version="{{version}}"})', "min": 0}


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
    assert results["ok-ratio"]["value"] > 0.99
    assert results["ok-ratio"]["stableValue"] > 0.99
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
