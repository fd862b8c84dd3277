"""Reading the fetcher's result out of a pod's init container status."""

from __future__ import annotations

from typing import Any

from modeldeploy.observed import fetch_failure_of_pod, fetched_digest_of_pod


def pod(exit_code: int, message: str, state: str = "state") -> dict[str, Any]:
    return {
        "metadata": {"name": "mnist-v3-abc"},
        "status": {
            "initContainerStatuses": [
                {
                    "name": "fetch-model",
                    state: {"terminated": {"exitCode": exit_code, "reason": "Error", "message": message}},
                }
            ]
        },
    }


def test_failure_reason_is_the_last_line_of_the_termination_message() -> None:
    failure = fetch_failure_of_pod(pod(1, "retrying\nfetch failed: version 3 not found: s3://m/x/3/\n"))
    assert failure is not None
    assert failure.message == "fetch failed: version 3 not found: s3://m/x/3/"
    assert failure.pod == "mnist-v3-abc"


def test_a_restarting_fetcher_reports_its_last_failure() -> None:
    failure = fetch_failure_of_pod(pod(1, "fetch failed: access denied", state="lastState"))
    assert failure is not None
    assert "access denied" in failure.message


def test_success_is_not_a_failure_and_carries_the_digest() -> None:
    digest = "sha256:" + "0123456789abcdef" * 4
    ok = pod(0, f"fetched version 3 of s3://m/x: {digest} (4 files, 100 bytes)")
    assert fetch_failure_of_pod(ok) is None
    assert fetched_digest_of_pod(ok) == digest
    assert fetched_digest_of_pod(pod(1, digest)) is None
