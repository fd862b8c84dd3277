"""What GitOps tools read from a live ModelDeployment, through a real canary:
- cli-utils' kstatus (Flux's health checks): InProgress during a canary, Current when
  Ready, Failed after a rollback;
- Argo CD's health.lua and actions in Argo CD's Lua VM: Progressing, Suspended, Healthy,
  Degraded; the promote, pause and resume actions applied to the live object move the
  rollout as they would from Argo CD's UI.

MODELDEPLOY_CAPTURE_DIR=dir saves each live object read here, for the Lua scripts' own
test data (integrations/argocd/.../testdata, tests/consumers/test_argocd_lua.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modeldeploy.api.names import GROUP, PLURAL, VERSION
from testbed.modelserver.traffic import TrafficDriver
from testbed.support.tools import ARGOCD_SCRIPTS, kstatus, run_lua
from testbed.support.wait import wait_for

from .conftest import Cluster, Operator
from .test_canary import canary, canary_sample, serving_v1

pytestmark = pytest.mark.timeout(240)
SLOW_STEPS = [{"weight": 20, "pause": "60s"}, {"weight": 50, "pause": "60s"}]


class Reader:
    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster, self.namespace = cluster, namespace
        self.capture = (
            Path(os.environ["MODELDEPLOY_CAPTURE_DIR"]) if os.environ.get("MODELDEPLOY_CAPTURE_DIR") else None
        )

    def read(self, label: str) -> dict[str, Any]:
        """The live object, with what kstatus and health.lua make of it."""
        obj = self.cluster.get_md(self.namespace, "mnist")
        if self.capture is not None:
            self.capture.mkdir(parents=True, exist_ok=True)
            (self.capture / f"{label}.json").write_text(json.dumps(obj, indent=2))
        return obj

    def apply_action(self, action: str) -> None:
        """Run an action.lua on the live object and write its result back, as Argo CD does."""
        changed = run_lua(ARGOCD_SCRIPTS / "actions" / action / "action.lua", self.read(f"before-{action}"))
        self.cluster.custom.replace_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, "mnist", changed
        )


def health(obj: dict[str, Any]) -> str:
    return str(run_lua(ARGOCD_SCRIPTS / "health.lua", obj)["status"])


def offered(obj: dict[str, Any]) -> set[str]:
    discovered = run_lua(ARGOCD_SCRIPTS / "actions" / "discovery.lua", obj)
    return {name for name, action in discovered.items() if not action.get("disabled")}


def test_kstatus_and_argocd_follow_a_canary_a_pause_and_a_rollback(
    cluster: Cluster, namespace: str, operator: Operator, traffic: Callable[..., TrafficDriver]
) -> None:
    reader = Reader(cluster, namespace)
    serving_v1(cluster, namespace, canary_sample(steps=SLOW_STEPS, progressDeadlineSeconds=300))
    ready = reader.read("ready")
    assert kstatus(ready)["status"] == "Current"
    assert health(ready) == "Healthy"
    assert offered(ready) == {"pause"}

    driver = traffic(inputs=(1.0, 2.0, 9.0))  # version 3 refuses x = 9
    edited = cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    # The edit as the API server stored it, before or after the operator saw it: in progress.
    assert kstatus(edited)["status"] == "InProgress"
    assert health(edited) == "Progressing"
    wait_for(lambda: (c := canary(cluster, namespace)) and c.get("stepStartedAt"), 30, what="canary serving")
    mid = reader.read("canary")
    assert kstatus(mid) == {
        "status": "InProgress",
        "message": next(c["message"] for c in mid["status"]["conditions"] if c["type"] == "Reconciling"),
    }
    assert health(mid) == "Progressing"
    assert offered(mid) == {"promote", "abort", "pause"}

    reader.apply_action("pause")
    wait_for(lambda: (canary(cluster, namespace) or {}).get("paused"), 30, what="the canary paused")
    paused = reader.read("paused")
    assert health(paused) == "Suspended"
    assert kstatus(paused)["status"] == "InProgress"  # still short of the spec, waiting for a person
    assert offered(paused) == {"promote", "abort", "resume"}
    reader.apply_action("resume")
    wait_for(lambda: not (canary(cluster, namespace) or {"paused": True})["paused"], 30, what="resumed")

    reader.apply_action("promote")  # skips the 60 s steps
    cluster.wait_phase(namespace, "mnist", "Ready", timeout=60)
    promoted = reader.read("promoted")
    assert promoted["status"]["stable"]["version"] == 2
    assert kstatus(promoted)["status"] == "Current"
    assert health(promoted) == "Healthy"

    cluster.patch_md(namespace, "mnist", {"spec": {"rollout": {"steps": [{"weight": 50, "pause": "2s"}]}}})
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 3}}})
    cluster.wait_phase(namespace, "mnist", "Degraded", timeout=60)
    rolled_back = reader.read("rolled-back")
    assert rolled_back["status"]["failedVersions"] == [3]
    result = kstatus(rolled_back)
    assert result["status"] == "Failed"
    assert "success rate" in result["message"]
    assert health(rolled_back) == "Degraded"
    assert offered(rolled_back) == {"retry", "pause"}
    assert driver.counts().get(2, 0) > 0
