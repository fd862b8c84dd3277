"""The Prometheus analysis provider against a real Prometheus scraping the model servers."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from testbed.modelserver.traffic import TrafficDriver
from testbed.support.prometheus_server import query

from .conftest import Cluster, Operator
from .test_canary import canary_sample, serving_v1

pytestmark = pytest.mark.timeout(240)


def prometheus_analysis(address: str) -> dict[str, object]:
    """Checks every 3s: increase() over the interval needs a few 1s scrapes."""
    return {
        "interval": "3s",
        "failureLimit": 2,
        "minRequests": 5,
        "successRate": {"min": 0.9},
        "latencyP99Ms": {"max": 250},
        "prometheus": {"address": address},
    }


def test_prometheus_provider_rolls_back_an_erroring_canary(
    cluster: Cluster,
    namespace: str,
    operator: Operator,
    prometheus: str,
    traffic: Callable[..., TrafficDriver],
) -> None:
    serving_v1(cluster, namespace, canary_sample(analysis=prometheus_analysis(prometheus)))
    traffic(inputs=(1.0, 9.0))  # version 3 refuses inputs >= 5: half of these
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 3}}})
    md = cluster.wait_phase(namespace, "mnist", "Degraded", timeout=90)
    entry = md["status"]["history"][-1]
    assert entry["result"] == "RolledBack"
    # Prometheus's increase() extrapolates, so the rate is near the traffic's 0.5, not exact.
    match = re.search(r"success rate (\d\.\d+) < 0.9", entry["reason"])
    assert match is not None, entry
    assert 0.35 < float(match.group(1)) < 0.65
    # The verdict came from Prometheus's data: the series are there, by version.
    series = query(
        prometheus,
        f':tensorflow:serving:request_count{{namespace="{namespace}",version="3",status="INVALID_ARGUMENT"}}',
    )
    assert series, "Prometheus never scraped the canary"


def test_prometheus_provider_promotes_a_healthy_canary(
    cluster: Cluster,
    namespace: str,
    operator: Operator,
    prometheus: str,
    traffic: Callable[..., TrafficDriver],
) -> None:
    serving_v1(cluster, namespace, canary_sample(analysis=prometheus_analysis(prometheus)))
    traffic()
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    md = cluster.wait_phase(namespace, "mnist", "Ready", timeout=120)
    assert md["status"]["stable"]["version"] == 2
    assert md["status"]["history"][-1]["result"] == "Promoted"
