"""Delivery to real loopback HTTP receivers: a hanging receiver delays only its own queue and
never the caller, a full queue drops (and counts) instead of waiting, failures that may pass
are retried a bounded number of times with the same event id, refusals are not."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from modeldeploy.api.status import ModelDeploymentStatus
from modeldeploy.control import operator_metrics
from modeldeploy.control.notice_delivery import Notifier
from modeldeploy.control.notices import NotificationsConfig, Webhook
from testbed.support.wait import wait_for
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.timeout(60)

BODY: dict[str, Any] = {
    "metadata": {"namespace": "ml", "name": "mnist", "uid": "u"},
    "spec": {"model": {"version": 3}},
}
BEFORE = ModelDeploymentStatus.model_validate({"phase": "Ready", "stable": {"version": 2}})


def canary_of(version: int) -> ModelDeploymentStatus:
    return ModelDeploymentStatus.model_validate(
        {"phase": "Progressing", "stable": {"version": 2}, "canary": {"version": version}}
    )


def counted(webhook: str, result: str, event: str = "CanaryStarted") -> float:
    value = operator_metrics.REGISTRY.get_sample_value(
        "modeldeploy_notifications_total", {"webhook": webhook, "event": event, "result": result}
    )
    return value or 0.0


@pytest.fixture
def receiver() -> Iterator[Callable[..., WebhookReceiver]]:
    started: list[WebhookReceiver] = []

    def start(**kwargs: object) -> WebhookReceiver:
        started.append(WebhookReceiver(**kwargs))  # type: ignore[arg-type]
        return started[-1]

    yield start
    for r in started:
        r.stop()


@pytest.fixture
def notifier() -> Iterator[Callable[..., Notifier]]:
    made: list[Notifier] = []

    def make(*hooks: Webhook, queue_size: int = 256) -> Notifier:
        made.append(Notifier(NotificationsConfig(webhooks=list(hooks), queue_size=queue_size)))
        return made[-1]

    yield make
    for n in made:
        n.close()


def hook(name: str, url: str, **fields: object) -> Webhook:
    # A name per test run: the counters are the process's.
    return Webhook.model_validate({"name": f"{name}-{uuid.uuid4().hex[:6]}", "url": url, **fields})


def test_a_hanging_receiver_delays_only_its_own_queue_and_a_full_queue_drops(
    receiver: Callable[..., WebhookReceiver], notifier: Callable[..., Notifier]
) -> None:
    good, hung = receiver(), receiver(hang=True)
    good_hook = hook("good", good.url)
    hung_hook = hook("hung", hung.url, timeoutSeconds=30, maxAttempts=1)
    sender = notifier(good_hook, hung_hook, queue_size=4)
    sender.status_changed(BODY, BEFORE, canary_of(3), "2026-11-24T12:00:00Z")
    wait_for(lambda: hung.received, 10, what="the hanging receiver holds the first POST")
    # More while it hangs: each reaches the good receiver, unhindered by the hanging one.
    flood = 12
    for version in range(4, 4 + flood):
        sender.status_changed(BODY, canary_of(version - 1), canary_of(version), "2026-11-24T12:00:01Z")
        expected = version - 2  # events so far: versions 3..version

        def arrived(expected: int = expected) -> bool:
            return len(good.received) == expected

        wait_for(arrived, 10, what=f"event {version} at the good receiver")
    assert [r.data["canaryVersion"] for r in good.received] == list(range(3, 4 + flood))
    # The hanging one: one POST in flight, 4 queued, the rest dropped and counted.
    assert counted(hung_hook.name, "dropped") == flood - 4
    assert counted(good_hook.name, "delivered") == flood + 1
    assert len(hung.received) == 1


def test_failures_that_may_pass_are_retried_with_the_same_event(
    receiver: Callable[..., WebhookReceiver], notifier: Callable[..., Notifier]
) -> None:
    flaky = receiver(statuses=[503, 429])
    flaky_hook = hook("flaky", flaky.url, maxAttempts=3)
    notifier(flaky_hook).status_changed(BODY, BEFORE, canary_of(3), "2026-11-24T12:00:00Z")
    wait_for(lambda: counted(flaky_hook.name, "delivered") == 1, 15, what="delivered on the third try")
    assert len(flaky.received) == 3
    assert len({r.cloud_event().get_id() for r in flaky.received}) == 1  # one event, three tries
    assert flaky.received[0].headers["content-type"].startswith("application/cloudevents+json")


@pytest.mark.parametrize(
    ("statuses", "fields", "posts"),
    [
        ([500, 500, 500], {"maxAttempts": 2}, 2),  # retried, bounded
        ([400], {"maxAttempts": 3}, 1),  # refused: not retried
    ],
    ids=["server-errors", "refused"],
)
def test_an_event_that_cannot_be_delivered_is_counted_failed(
    receiver: Callable[..., WebhookReceiver],
    notifier: Callable[..., Notifier],
    statuses: list[int],
    fields: dict[str, object],
    posts: int,
) -> None:
    failing = receiver(statuses=statuses)
    failing_hook = hook("failing", failing.url, **fields)
    notifier(failing_hook).status_changed(BODY, BEFORE, canary_of(3), "2026-11-24T12:00:00Z")
    wait_for(lambda: counted(failing_hook.name, "failed") == 1, 15, what="counted failed")
    assert len(failing.received) == posts


def test_a_post_that_hangs_past_its_timeout_is_retried_then_given_up(
    receiver: Callable[..., WebhookReceiver], notifier: Callable[..., Notifier]
) -> None:
    hung = receiver(hang=True)
    hung_hook = hook("timeout", hung.url, timeoutSeconds=0.5, maxAttempts=2)
    notifier(hung_hook).status_changed(BODY, BEFORE, canary_of(3), "2026-11-24T12:00:00Z")
    wait_for(lambda: counted(hung_hook.name, "failed") == 1, 15, what="given up after two timeouts")
    assert len(hung.received) == 2


def test_headers_and_filters_are_the_admins(
    receiver: Callable[..., WebhookReceiver], notifier: Callable[..., Notifier]
) -> None:
    target, elsewhere = receiver(), receiver()
    sender = notifier(
        hook("auth", target.url, headers={"Authorization": "Bearer s3cret"}, events=["CanaryStarted"]),
        hook("other-ns", elsewhere.url, namespaces=["vision"]),
    )
    sender.status_changed(BODY, BEFORE, canary_of(3), "2026-11-24T12:00:00Z")
    wait_for(lambda: target.received, 10, what="the event")
    assert target.received[0].headers["authorization"] == "Bearer s3cret"
    # The filtered one got nothing; a later event would show up behind this one, so none came.
    sender.status_changed(
        {**BODY, "metadata": {**BODY["metadata"], "namespace": "vision"}}, BEFORE, canary_of(3), "t"
    )
    wait_for(lambda: elsewhere.received, 10, what="the vision namespace's event")
    assert [r.data["namespace"] for r in elsewhere.received] == ["vision"]


def test_each_format_reaches_its_receiver_in_its_shape_and_signed(
    receiver: Callable[..., WebhookReceiver], notifier: Callable[..., Notifier]
) -> None:
    slack, teams, events = receiver(), receiver(), receiver()
    secret = "s3cret-for-the-receiver"
    sender = notifier(
        hook("slack", slack.url, format="Slack", signingSecret=secret),
        hook("teams", teams.url, format="Teams"),
        hook("events", events.url, signingSecret=secret),
    )
    rolled_back = ModelDeploymentStatus.model_validate(
        {
            "phase": "Degraded",
            "stable": {"version": 2},
            "history": [{"version": 3, "result": "RolledBack", "at": "2026-11-24T12:00:09Z", "reason": "x"}],
        }
    )
    sender.status_changed(BODY, canary_of(3), rolled_back, "2026-11-24T12:00:10Z")
    wait_for(lambda: slack.received and teams.received and events.received, 10, what="all three")

    (to_slack,) = slack.received
    message = json.loads(to_slack.body)
    assert "ml/mnist" in message["text"]
    assert "RolledBack" in message["text"]
    assert message["blocks"][0]["type"] == "section"
    assert message["blocks"][0]["text"]["text"] == message["text"]
    assert to_slack.headers["x-modeldeploy-signature"] == expected_signature(secret, to_slack.body)

    (to_teams,) = teams.received
    card = json.loads(to_teams.body)
    assert card["@type"] == "MessageCard"
    assert card["themeColor"] == "D13438"
    assert "ml/mnist" in card["title"]
    assert card["text"] == "version 3 RolledBack: x"
    assert {"name": "stable version", "value": "2"} in card["sections"][0]["facts"]
    assert "x-modeldeploy-signature" not in to_teams.headers  # unsigned without a secret

    (to_events,) = events.received
    assert to_events.cloud_event().get_type() == "dev.modeldeploy.rollout.RolledBack"
    assert to_events.headers["x-modeldeploy-signature"] == expected_signature(secret, to_events.body)
    assert (
        expected_signature("another secret", to_events.body) != to_events.headers["x-modeldeploy-signature"]
    )


def expected_signature(secret: str, body: bytes) -> str:
    """What a receiver computes, written out here rather than reusing the operator's helper."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
