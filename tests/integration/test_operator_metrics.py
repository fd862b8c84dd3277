"""The operator's own /metrics through a healthy and an erroring canary on the
real control plane, read with prometheus_client's own parser."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.api.names import GROUP, PLURAL, VERSION
from testbed.modelserver.traffic import TrafficDriver
from testbed.support.wait import wait_for

from .conftest import Cluster, Operator
from .test_canary import canary, canary_sample, serving_v1

pytestmark = pytest.mark.timeout(240)


def samples(operator: Operator) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the operator's /metrics: (name, labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(operator.metrics())
        for sample in family.samples
    }


def value(operator: Operator, metric: str, **labels: str) -> float:
    return samples(operator).get((metric, frozenset(labels.items())), 0.0)


def test_metrics_follow_a_healthy_and_an_erroring_canary(
    cluster: Cluster, namespace: str, operator: Operator, traffic: Callable[..., TrafficDriver]
) -> None:
    ours = {"namespace": namespace, "name": "mnist"}
    serving_v1(cluster, namespace, canary_sample())
    wait_for(lambda: value(operator, "modeldeploy_phase", **ours, phase="Ready") == 1, 30, what="Ready")
    assert value(operator, "modeldeploy_phase", **ours, phase="Progressing") == 0
    assert value(operator, "modeldeploy_leader") == 1  # no leader election: the only replica leads
    version = next(k for k in samples(operator) if k[0] == "modeldeploy_build_info")
    assert dict(version[1])["version"] == "0.1.0"

    driver = traffic(inputs=(1.0, 2.0, 9.0))  # version 3 refuses x = 9
    started = time.monotonic()
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    wait_for(lambda: (c := canary(cluster, namespace)) and c.get("stepStartedAt"), 30, what="step 1")
    wait_for(
        lambda: (
            value(operator, "modeldeploy_canary_weight", **ours) == 20
            and value(operator, "modeldeploy_phase", **ours, phase="Progressing") == 1
        ),
        10,
        what="weight 20 and Progressing on /metrics",
    )
    wait_for(lambda: value(operator, "modeldeploy_canary_step", **ours) == 1, 30, what="step 2 on /metrics")
    cluster.wait_phase(namespace, "mnist", "Ready", timeout=60)
    healthy_seconds = time.monotonic() - started
    wait_for(lambda: value(operator, "modeldeploy_canary_weight", **ours) == 0, 10, what="weight back to 0")
    assert value(operator, "modeldeploy_rollouts_total", **ours, result="Promoted") == 1
    passed = value(operator, "modeldeploy_analysis_checks_total", **ours, verdict="Passed")
    # Every step needs passing checks; one check per 1 s interval at most.
    assert 2 <= passed <= healthy_seconds + 1, (passed, healthy_seconds)

    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 3}}})
    cluster.wait_phase(namespace, "mnist", "Degraded", timeout=60)
    assert value(operator, "modeldeploy_rollouts_total", **ours, result="RolledBack") == 1
    assert value(operator, "modeldeploy_rollouts_total", **ours, result="Promoted") == 1
    assert value(operator, "modeldeploy_analysis_checks_total", **ours, verdict="Failed") >= 2  # failureLimit
    wait_for(lambda: value(operator, "modeldeploy_phase", **ours, phase="Degraded") == 1, 10, what="Degraded")

    # One scrape for both counters: a pass may end between two scrapes.
    everything = samples(operator)
    succeeded = everything[("modeldeploy_reconcile_total", frozenset({("result", "success")}))]
    assert succeeded > 10
    passes = everything[("modeldeploy_reconcile_duration_seconds_count", frozenset())]
    assert passes >= succeeded
    assert ("modeldeploy_workqueue_depth", frozenset()) in everything
    assert driver.counts().get(2, 0) > 0

    # A deleted resource's series go with it.
    cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "mnist")
    wait_for(
        lambda: not any(dict(labels).get("name") == "mnist" for _, labels in samples(operator)),
        30,
        what="the deleted resource's series gone",
    )
