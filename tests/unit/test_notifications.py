"""Which status changes notify, what the CloudEvent says (read back by the CloudEvents SDK),
and the admin's configuration file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http_event

from modeldeploy.api.status import ModelDeploymentStatus
from modeldeploy.control.notices import (
    CONTENT_TYPE,
    NotificationEvent,
    NotificationsConfigError,
    Webhook,
    cloud_event,
    load_config,
    notices,
)

BODY = {
    "metadata": {"namespace": "ml", "name": "mnist", "uid": "u-1", "generation": 4},
    "spec": {"model": {"version": 3}},
}
FAILED_CHECK = {
    "at": "2026-11-24T12:00:05.000Z",
    "verdict": "Failed",
    "successRate": 0.5,
    "message": "success rate 0.5 < 0.99",
}


def status(**fields: Any) -> ModelDeploymentStatus:
    return ModelDeploymentStatus.model_validate({"phase": "Progressing", "stable": {"version": 2}, **fields})


def canary(step: int = 0, weight: int = 10, **fields: Any) -> dict[str, Any]:
    return {"version": 3, "step": step, "weight": weight, **fields}


def events(previous: ModelDeploymentStatus, current: ModelDeploymentStatus) -> list[NotificationEvent]:
    return [n.event for n in notices(previous, current)]


def test_a_steady_status_notifies_nobody() -> None:
    same = status(canary=canary(analysis={"passed": 3}))
    assert notices(same, same) == []
    # More checks at the same step are not news either.
    assert notices(same, status(canary=canary(analysis={"passed": 4}))) == []


def test_canary_started_and_step_passed() -> None:
    assert events(status(), status(canary=canary())) == [NotificationEvent.CANARY_STARTED]
    (passed,) = notices(
        status(canary=canary()),
        status(
            canary=canary(
                step=1, weight=50, analysis={"passed": 5, "lastCheck": {**FAILED_CHECK, "verdict": "Passed"}}
            )
        ),
    )
    assert passed.event is NotificationEvent.STEP_PASSED
    assert passed.details["step"] == 1
    assert passed.details["weight"] == 10
    assert passed.details["nextStep"] == 2
    assert passed.details["nextWeight"] == 50
    assert passed.details["check"]["verdict"] == "Passed"


@pytest.mark.parametrize(
    "held", [{"paused": True}, {"waitingForTraffic": True}], ids=["paused", "waiting-for-traffic"]
)
def test_paused_once_when_a_canary_is_held(held: dict[str, Any]) -> None:
    running, paused = status(canary=canary()), status(canary=canary(**held))
    assert events(running, paused) == [NotificationEvent.PAUSED]
    assert events(paused, paused) == []


@pytest.mark.parametrize(
    ("result", "event"),
    [("RolledBack", NotificationEvent.ROLLED_BACK), ("Aborted", NotificationEvent.ABORTED)],
)
def test_a_rollback_or_abort_carries_the_failing_check(result: str, event: NotificationEvent) -> None:
    during = status(canary=canary(analysis={"failed": 2, "lastCheck": FAILED_CHECK}))
    after = status(
        phase="Degraded",
        history=[
            {
                "version": 3,
                "result": result,
                "at": "2026-11-24T12:00:06Z",
                "reason": "success rate 0.5 < 0.99",
            }
        ],
    )
    (notice,) = notices(during, after)
    assert notice.event is event
    assert notice.details["check"]["message"] == "success rate 0.5 < 0.99"
    assert notice.details["check"]["successRate"] == 0.5


def test_promoted_names_the_version_it_replaced() -> None:
    after = status(
        phase="Ready",
        stable={"version": 3},
        history=[
            {"version": 3, "result": "Promoted", "at": "t", "reason": "all steps passed", "replaced": 2}
        ],
    )
    (notice,) = notices(status(canary=canary(step=1, weight=50)), after)
    assert notice.event is NotificationEvent.PROMOTED
    assert notice.details["replaced"] == 2


def test_the_body_is_a_cloud_event_the_sdk_reads() -> None:
    during = status(canary=canary(analysis={"lastCheck": FAILED_CHECK}))
    after = status(
        phase="Degraded", history=[{"version": 3, "result": "RolledBack", "at": "t", "reason": "r"}]
    )
    (notice,) = notices(during, after)
    payload = cloud_event(notice, BODY, after, "2026-11-24T12:00:06.000Z")
    event = from_http_event(HTTPMessage(headers={"content-type": CONTENT_TYPE}, body=payload))
    assert event.get_specversion() == "1.0"
    assert event.get_type() == "dev.modeldeploy.rollout.RolledBack"
    assert event.get_source() == "/apis/serving.modeldeploy.dev/v1alpha1/namespaces/ml/modeldeployments/mnist"
    assert event.get_subject() == "ml/mnist"
    sent_at = event.get_time()
    assert sent_at is not None
    assert sent_at.year == 2026
    data = event.get_data()
    assert isinstance(data, dict)
    assert (data["requestedVersion"], data["stableVersion"], data["version"]) == (3, 2, 3)
    assert data["check"]["verdict"] == "Failed"
    assert data["uid"] == "u-1"


def test_webhook_filters_by_event_and_namespace() -> None:
    hook = Webhook(name="a", url="http://127.0.0.1:1/x", events=["RolledBack"], namespaces=["ml"])
    assert hook.wants(NotificationEvent.ROLLED_BACK, "ml")
    assert not hook.wants(NotificationEvent.PROMOTED, "ml")
    assert not hook.wants(NotificationEvent.ROLLED_BACK, "other")
    every = Webhook(name="b", url="https://hooks.example.com/x")
    assert all(every.wants(e, "any") for e in NotificationEvent)


def test_config_file(tmp_path: Path) -> None:
    path = tmp_path / "notifications.yaml"
    path.write_text(
        "queueSize: 8\nwebhooks:\n- {name: alerts, url: 'http://127.0.0.1:9/hook', events: [RolledBack],"
        " timeoutSeconds: 2, maxAttempts: 4, headers: {Authorization: Bearer x}}\n"
    )
    config = load_config(path)
    assert config.queue_size == 8
    (hook,) = config.webhooks
    assert (hook.timeout_seconds, hook.max_attempts, hook.headers) == (2, 4, {"Authorization": "Bearer x"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("webhooks: [{name: a, url: 'ftp://x'}]", "url"),
        ("webhooks: [{name: a, url: 'http://x', events: [Deployed]}]", "events"),
        ("webhooks: [{name: a, url: 'http://x', maxAttempts: 0}]", "maxAttempts"),
        ("webhooks: [{name: a, url: 'http://x'}, {name: a, url: 'http://y'}]", "names repeat"),
        ("webhooks: [{name: a, url: 'http://x', secret: s}]", "secret"),
        ("webhooks: [{name: a, url: 'http://x', format: Discord}]", "format"),
        ("webhooks: [", "notifications config"),
    ],
)
def test_a_bad_config_file_is_refused_naming_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "notifications.yaml"
    path.write_text(text)
    with pytest.raises(NotificationsConfigError, match=message):
        load_config(path)


def test_a_missing_config_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotificationsConfigError, match=r"absent\.yaml"):
        load_config(tmp_path / "absent.yaml")
