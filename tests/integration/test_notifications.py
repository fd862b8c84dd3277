"""Notifications from a running operator: a promoted and a rolled-back
canary post CloudEvents to the admin's webhooks, while a webhook that hangs holds nothing up."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from cloudevents.core.base import BaseCloudEvent

from testbed.modelserver.traffic import TrafficDriver
from testbed.support.wait import wait_for
from tests.support.webhook_receiver import WebhookReceiver

from .conftest import Cluster, Operator
from .test_canary import canary_sample, serving_v1

pytestmark = pytest.mark.timeout(240)


def weight_of(event: BaseCloudEvent) -> object:
    data = event.get_data()
    assert isinstance(data, dict), data
    return data["weight"]


@pytest.fixture
def receivers() -> Iterator[tuple[WebhookReceiver, WebhookReceiver]]:
    listening, hanging = WebhookReceiver(), WebhookReceiver(hang=True)
    yield listening, hanging
    listening.stop()
    hanging.stop()


def test_rollouts_post_cloud_events_and_a_hanging_webhook_holds_nothing_up(
    cluster: Cluster,
    namespace: str,
    start_operator: Callable[..., Operator],
    traffic: Callable[..., TrafficDriver],
    receivers: tuple[WebhookReceiver, WebhookReceiver],
    tmp_path: Path,
) -> None:
    listening, hanging = receivers
    config = {
        "queueSize": 16,
        "webhooks": [
            {"name": "team", "url": listening.url, "namespaces": [namespace]},
            {"name": "stuck", "url": hanging.url, "timeoutSeconds": 60, "maxAttempts": 1},
            {"name": "elsewhere", "url": listening.url, "namespaces": ["some-other-team"]},
        ],
    }
    path = tmp_path / "notifications.yaml"
    path.write_text(yaml.safe_dump(config))
    start_operator(MODELDEPLOY_NOTIFICATIONS_CONFIG=str(path))

    serving_v1(cluster, namespace, canary_sample())
    driver = traffic()
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    md = cluster.wait_phase(namespace, "mnist", "Ready", timeout=60)
    assert md["status"]["stable"]["version"] == 2
    wait_for(lambda: "Promoted" in listening.events(), 10, what="Promoted posted")
    # The stuck webhook still holds its first POST: the rollout went on regardless.
    assert len(hanging.received) == 1

    driver.inputs = (1.0, 9.0)  # version 3 refuses inputs >= 5
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 3}}})
    cluster.wait_phase(namespace, "mnist", "Degraded", timeout=60)
    wait_for(lambda: "RolledBack" in listening.events(), 10, what="RolledBack posted")
    # Two steps passed (20% and 50%), then the promotion; version 3 failed at its first step.
    assert listening.events() == [
        "CanaryStarted",
        "StepPassed",
        "StepPassed",
        "Promoted",
        "CanaryStarted",
        "RolledBack",
    ]

    events = [r.cloud_event() for r in listening.received]
    assert {e.get_source() for e in events} == {
        f"/apis/serving.modeldeploy.dev/v1alpha1/namespaces/{namespace}/modeldeployments/mnist"
    }
    assert len({e.get_id() for e in events}) == len(events)
    promoted, rolled_back = events[3].get_data(), events[5].get_data()
    assert isinstance(promoted, dict)
    assert isinstance(rolled_back, dict)
    assert (promoted["version"], promoted["replaced"]) == (2, 1)
    assert [weight_of(e) for e in events[1:3]] == [20, 50]
    assert rolled_back["version"] == 3
    assert rolled_back["stableVersion"] == 2
    assert rolled_back["check"]["verdict"] == "Failed"
    assert "success rate" in rolled_back["check"]["message"]
    assert len(hanging.received) == 1
