"""Reading the fetcher's result out of a pod's init container status, and when a Deployment is complete."""

from __future__ import annotations

from typing import Any

from modeldeploy.api.names import LABEL_VERSION
from modeldeploy.rollout.child_state import ObservedDeployment, fetch_failure_of_pod, fetched_digest_of_pod

from .objects import deployment, deployment_status, pod


def fetcher_pod(exit_code: int, message: str, state: str = "state") -> dict[str, Any]:
    """A pod whose fetcher ended with ``exit_code``, ``message`` in ``state`` (``lastState``: before)."""
    fetcher = {"terminated": {"exitCode": exit_code, "reason": "Error", "message": message}}
    return pod("mnist-v3-abc", status={"initContainerStatuses": [{"name": "fetch-model", state: fetcher}]})


def test_failure_reason_is_the_last_line_of_the_termination_message() -> None:
    failure = fetch_failure_of_pod(
        fetcher_pod(1, "retrying\nfetch failed: version 3 not found: s3://m/x/3/\n")
    )
    assert failure is not None
    assert failure.message == "fetch failed: version 3 not found: s3://m/x/3/"
    assert failure.pod == "mnist-v3-abc"


def test_a_restarting_fetcher_reports_its_last_failure() -> None:
    failure = fetch_failure_of_pod(fetcher_pod(1, "fetch failed: access denied", state="lastState"))
    assert failure is not None
    assert "access denied" in failure.message


def test_success_is_not_a_failure_and_carries_the_digest() -> None:
    digest = "sha256:" + "0123456789abcdef" * 4
    ok = fetcher_pod(0, f"fetched version 3 of s3://m/x: {digest} (4 files, 100 bytes)")
    assert fetch_failure_of_pod(ok) is None
    assert fetched_digest_of_pod(ok) == digest
    assert fetched_digest_of_pod(fetcher_pod(1, digest)) is None


def version_3(generation: int, observed: int, replicas: int, updated: int, available: int) -> dict[str, Any]:
    """Version 3's Deployment of two replicas at ``generation``, its status as the counts say."""
    return deployment(
        "mnist-v3",
        generation=generation,
        labels={LABEL_VERSION: "3"},
        spec={"replicas": 2},
        status=deployment_status(replicas, observed=observed, updated=updated, available=available),
    )


def test_complete_once_every_pod_is_of_the_latest_spec_and_serves() -> None:
    # The gate opened on both pods before the Deployment's availableReplicas caught up:
    # serving pods are ready, so waiting for that count would only add a status write.
    lagging = ObservedDeployment.from_manifest(version_3(2, 2, 2, 2, available=0), serving_replicas=2)
    assert lagging.complete


def test_not_complete_while_pods_of_an_older_spec_remain_or_too_few_serve() -> None:
    old_pods_left = version_3(2, 2, replicas=3, updated=2, available=3)
    assert not ObservedDeployment.from_manifest(old_pods_left, serving_replicas=3).complete
    unseen_spec = version_3(3, 2, 2, 2, available=2)
    assert not ObservedDeployment.from_manifest(unseen_spec, serving_replicas=2).complete
    one_serving = version_3(2, 2, 2, 2, available=2)
    assert not ObservedDeployment.from_manifest(one_serving, serving_replicas=1).complete


def test_a_fetcher_that_failed_once_then_succeeded_is_no_failure() -> None:
    digest = "sha256:" + "0123456789abcdef" * 4
    recovered = fetcher_pod(0, f"fetched version 3 of s3://m/x: {digest} (4 files, 100 bytes)")
    status = recovered["status"]["initContainerStatuses"][0]
    status["lastState"] = {
        "terminated": {"exitCode": 1, "reason": "Error", "message": "fetch failed: timeout"}
    }
    assert fetch_failure_of_pod(recovered) is None
    assert fetched_digest_of_pod(recovered) == digest
    # Still restarting after that failure (waiting, or running its next try): the last run says why.
    for now in (
        {"waiting": {"reason": "CrashLoopBackOff"}},
        {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
    ):
        status["state"] = now
        failure = fetch_failure_of_pod(recovered)
        assert failure is not None
        assert failure.message == "fetch failed: timeout"
