"""Relative analysis on the real control plane: the canary judged against the stable over
the same window, with real traffic to the TF Serving-compatible model server."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from testbed.modelserver.traffic import TrafficDriver
from testbed.support.wait import wait_for

from .conftest import Cluster, Operator, sample
from .test_canary import canary, serving_v1
from .test_validation import changed

pytestmark = pytest.mark.timeout(180)

# Version 3's graph refuses inputs >= 5: one input in fifty, so 2% of its requests fail;
# version 1 answers them all. Each pod gets the inputs in turn, so the share is exact.
TWO_PERCENT_FAILING = (1.0,) * 49 + (9.0,)


def relative_rollout(interval: str, min_requests: int) -> dict[str, Any]:
    """One step held long enough for the checks; a fixed successRate.min of 0.95 that a
    canary failing 2% of its requests passes."""
    return {
        "strategy": "Canary",
        "steps": [{"weight": 50, "pause": "90s"}],
        "analysis": {
            "interval": interval,
            "failureLimit": 1,
            "minRequests": min_requests,
            "successRate": {"min": 0.95},
            "relative": {"successRateMaxDrop": 0.005, "confidence": 0.95},
        },
        "progressDeadlineSeconds": 150,
    }


def test_a_canary_failing_two_percent_under_a_clean_stable_is_rolled_back(
    cluster: Cluster, namespace: str, operator: Operator, traffic: Callable[..., TrafficDriver]
) -> None:
    serving_v1(cluster, namespace, sample("mnist", rollout=relative_rollout("12s", 100)))
    driver = traffic(rps=100, inputs=TWO_PERCENT_FAILING)
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 3}}})
    md = cluster.wait_phase(namespace, "mnist", "Degraded", timeout=120)
    entry = md["status"]["history"][-1]
    assert entry["result"] == "RolledBack"
    assert md["status"]["stable"]["version"] == 1
    # The relative check decided, with both versions' figures and the test's result.
    match = re.search(
        r"canary (\d\.?\d*)% errors vs stable 0%: worse by more than 0\.5%, p ", entry["reason"]
    )
    assert match is not None, entry
    assert 1.5 <= float(match.group(1)) <= 2.5
    healthy = next(c for c in md["status"]["conditions"] if c["type"] == "CanaryHealthy")
    assert healthy["status"] == "False"
    assert "errors vs stable" in healthy["message"]
    # The same check's absolute figure passes successRate.min 0.95: alone, it would promote.
    success = re.search(r"success rate (\d\.\d+), p99", entry["reason"])
    assert success is not None, entry
    assert 0.95 < float(success.group(1)) < 0.99
    assert driver.failed[1] == 0
    assert driver.failed[3] > 0


def test_twenty_requests_a_window_stay_inconclusive(
    cluster: Cluster, namespace: str, operator: Operator, traffic: Callable[..., TrafficDriver]
) -> None:
    # minRequests 0: only the statistics decide, and twenty requests cannot tell 2% from 0.5%.
    serving_v1(cluster, namespace, sample("mnist", rollout=relative_rollout("5s", 0)))
    traffic(rps=8, inputs=TWO_PERCENT_FAILING)
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 3}}})

    def compared() -> dict[str, Any] | None:
        c = canary(cluster, namespace)
        last = (c or {}).get("analysis", {}).get("lastCheck") or {}
        relative = last.get("relative") or {}
        return (
            last
            if c and c["analysis"].get("inconclusive", 0) >= 3 and "canarySuccessRate" in relative
            else None
        )

    last = wait_for(compared, 60, what="relative checks that compared both versions")
    assert last["verdict"] == "Inconclusive"
    assert last["relative"]["result"] == "Inconclusive"
    assert last["relative"]["stableSuccessRate"] == 1.0
    assert last["relative"]["pValue"] > 0.05
    assert 8 <= last["requests"] <= 40
    assert "too few requests to tell a drop of 0.5%" in last["message"]
    c = canary(cluster, namespace)
    assert c is not None
    assert c["analysis"].get("failed", 0) == 0
    assert c["analysis"].get("passed", 0) == 0


def test_the_prometheus_source_compares_the_stable_over_the_same_window(
    cluster: Cluster,
    namespace: str,
    operator: Operator,
    prometheus: str,
    traffic: Callable[..., TrafficDriver],
) -> None:
    rollout = relative_rollout("5s", 100)
    # 20 s of 1 s scrapes: about a thousand requests a version at 100 a second, half each.
    rollout["analysis"] |= {"prometheus": {"address": prometheus}, "window": "20s"}
    serving_v1(cluster, namespace, sample("mnist", rollout=rollout))
    traffic(rps=100, inputs=TWO_PERCENT_FAILING)
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 3}}})
    md = cluster.wait_phase(namespace, "mnist", "Degraded", timeout=120)
    entry = md["status"]["history"][-1]
    assert entry["result"] == "RolledBack"
    # increase() extrapolates: near 2%, not exact; the stable's zero stays zero.
    match = re.search(
        r"canary (\d\.?\d*)% errors vs stable 0%: worse by more than 0\.5%, p ", entry["reason"]
    )
    assert match is not None, entry
    assert 1.0 <= float(match.group(1)) <= 3.0


RELATIVE = {"successRateMaxDrop": 0.005}


@pytest.mark.parametrize(
    ("rollout", "field", "words"),
    [
        (
            {"strategy": "Immediate", "analysis": {"relative": RELATIVE}},
            "spec.rollout.analysis.relative",
            "needs strategy Canary",
        ),
        (
            {"analysis": {"relative": {"confidence": 0.9}}},
            "spec.rollout.analysis.relative",
            "nothing to compare",
        ),
        (
            {"analysis": {"relative": {**RELATIVE, "confidence": 0.5}}},
            "spec.rollout.analysis.relative.confidence",
            "must lie in (0.5, 0.9999]",
        ),
        (
            {"analysis": {"relative": {**RELATIVE, "confidence": 1}}},
            "spec.rollout.analysis.relative.confidence",
            "must lie in (0.5, 0.9999]",
        ),
        (
            {"analysis": {"relative": {"successRateMaxDrop": 2}}},
            "spec.rollout.analysis.relative.successRateMaxDrop",
            "less than or equal to 1",
        ),
        (
            {"analysis": {"relative": {"latencyP99MaxRatio": 0.8}}},
            "spec.rollout.analysis.relative.latencyP99MaxRatio",
            "greater than or equal to 1",
        ),
    ],
    ids=[
        "immediate",
        "nothing to compare",
        "confidence 0.5",
        "confidence 1",
        "drop above 1",
        "ratio below 1",
    ],
)
def test_the_api_server_refuses_contradictory_relative_checks(
    cluster: Cluster, namespace: str, rollout: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(ApiException) as excinfo:
        cluster.create_md(namespace, changed(rollout=rollout))
    assert excinfo.value.status == 422
    assert field in excinfo.value.body, excinfo.value.body
    assert words in excinfo.value.body, excinfo.value.body
