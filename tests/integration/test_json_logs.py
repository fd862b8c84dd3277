"""kopf's --log-format=json: every line of the operator's log is a JSON object,
and each decision of a canary is one line naming the resource and its version."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from testbed.modelserver.traffic import TrafficDriver
from testbed.support.wait import wait_for

from .conftest import Cluster, Operator
from .test_canary import canary_sample, serving_v1

pytestmark = pytest.mark.timeout(180)


def json_lines(operator: Operator) -> list[dict[str, Any]]:
    lines = [line for line in operator.log().splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    return parsed


def test_json_logs_carry_one_line_per_decision_with_resource_and_version(
    cluster: Cluster,
    namespace: str,
    start_operator: Callable[..., Operator],
    traffic: Callable[..., TrafficDriver],
) -> None:
    operator = start_operator(options=("--log-format=json",))
    serving_v1(cluster, namespace, canary_sample())
    traffic()
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    cluster.wait_phase(namespace, "mnist", "Ready", timeout=60)

    def decisions() -> list[dict[str, Any]]:
        return [line for line in json_lines(operator) if "decision" in line]

    wait_for(
        lambda: any(d["decision"] == "VersionRolled" for d in decisions()), 10, what="VersionRolled logged"
    )
    ours = [d for d in decisions() if d["object"]["name"] == "mnist"]
    assert all(
        d["object"]["namespace"] == namespace and d["object"]["kind"] == "ModelDeployment" for d in ours
    )
    v2 = [d["decision"] for d in ours if d["version"] == 2]
    assert v2[:1] == ["CanaryStarted"], v2
    assert v2.count("CanaryStep") == 2  # to the second step, then past the last (promoting)
    assert "VersionRolled" in v2
    assert "Ready" in v2
    rolled = next(d for d in ours if d["decision"] == "VersionRolled")
    assert rolled["message"] == "VersionRolled: now serving version 2 (was 1)"
    assert rolled["severity"] == "info"
    assert "timestamp" in rolled
    # Not posted twice: each decision is one Event of the pass, not one more from kopf's log poster.
    events = [e for e in cluster.core.list_namespaced_event(namespace).items if e.reason == "VersionRolled"]
    assert len(events) == 1, [e.message for e in events]
