"""Quiet canaries: a canary with too little traffic waits for it instead of
rolling back (analysis.onInconclusive Pause), and the Prometheus provider reads a window that
covers two scrapes of a real Prometheus scraping every 30 s, as many installations do."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from testbed.modelserver.traffic import TrafficDriver
from testbed.support.wait import holds_for, wait_for

from .conftest import Cluster, Operator
from .test_canary import canary, canary_sample, serving_v1

QUIET_ANALYSIS = {"interval": "1s", "failureLimit": 2, "minRequests": 5, "onInconclusive": "Pause"}


@pytest.mark.timeout(180)
def test_a_canary_without_traffic_waits_for_it_past_the_deadline_then_goes_on(
    cluster: Cluster, namespace: str, operator: Operator, traffic: Callable[..., TrafficDriver]
) -> None:
    body = canary_sample(analysis=QUIET_ANALYSIS, progressDeadlineSeconds=15)
    serving_v1(cluster, namespace, body)
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})  # and no traffic at all

    def waiting() -> dict[str, str] | None:
        return (
            cluster.condition(namespace, "mnist", "Progressing")
            if (canary(cluster, namespace) or {}).get("waitingForTraffic")
            else None
        )

    held = wait_for(waiting, 60, what="the canary held for traffic")
    assert held["reason"] == "WaitingForTraffic"
    assert "Inconclusive" in held["message"]
    # Held, not rolled back: well past the deadline the canary is still there, at its step.
    holds_for(lambda: (canary(cluster, namespace) or {}).get("step") == 0, 5, what="held at step 1")
    assert cluster.get_md(namespace, "mnist")["status"].get("failedVersions", []) == []

    traffic()  # traffic arrives: the checks pass and the canary goes on to promotion
    md = cluster.wait_phase(namespace, "mnist", "Ready", timeout=60)
    assert md["status"]["stable"]["version"] == 2
    assert md["status"]["history"][-1]["result"] == "Promoted"


@pytest.mark.timeout(360)
@pytest.mark.scrape_interval("30s")
def test_prometheus_scraping_every_30s_judges_a_canary_over_its_window(
    cluster: Cluster,
    namespace: str,
    operator: Operator,
    prometheus: str,
    traffic: Callable[..., TrafficDriver],
) -> None:
    """An interval of 30 s under a 30 s scrape: increase() over the interval alone saw one
    sample and returned nothing, so every check was Inconclusive; over the window (2m by
    default) it sees several and the healthy canary is promoted."""
    analysis = {
        "interval": "30s",
        "failureLimit": 2,
        "minRequests": 5,
        "successRate": {"min": 0.9},
        "prometheus": {"address": prometheus},
    }
    body = canary_sample(
        analysis=analysis, steps=[{"weight": 50, "pause": "5s"}], progressDeadlineSeconds=240
    )
    serving_v1(cluster, namespace, body)
    traffic()
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    md = cluster.wait_phase(namespace, "mnist", "Ready", timeout=300)
    entry = md["status"]["history"][-1]
    assert entry["result"] == "Promoted", entry
    assert md["status"]["stable"]["version"] == 2
