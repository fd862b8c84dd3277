"""The plugin's pure parts: exit codes of ``status --watch``, ``undo``'s choice of version,
the namespace a kubeconfig context names, and what the views show."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from modeldeploy.cli.connection import context_namespace
from modeldeploy.cli.outcomes import Outcome, UndoError, rollout_outcome, undo_target
from modeldeploy.cli.views import age, list_table, pause_left, rollout_view

from .objects import model_deployment_body, pod, pod_status

NOW = datetime.datetime(2026, 11, 24, 12, 0, 0, tzinfo=datetime.UTC)


def md(generation: int = 2, **status: Any) -> dict[str, Any]:
    """Version 3 rolling out by one 10% step, its status observed at generation 2."""
    return model_deployment_body(
        generation=generation,
        resource_version="7",
        spec={"model": {"version": 3}, "rollout": {"steps": [{"weight": 10, "pause": "90s"}]}},
        status={"observedGeneration": 2, **status},
    )


@pytest.mark.parametrize(
    ("body", "outcome"),
    [
        (md(phase="Ready"), Outcome.READY),
        (md(phase="Degraded"), Outcome.FAILED),  # rolled back or aborted
        (md(phase="Failed"), Outcome.FAILED),
        (md(phase="Progressing"), None),
        (md(phase="Pending"), None),
        # Ready, but for the spec before the last edit: keep waiting.
        (md(generation=3, phase="Ready"), None),
        (md(generation=3, phase="Degraded"), None),
    ],
)
def test_status_watch_ends_only_at_the_current_generation(
    body: dict[str, Any], outcome: Outcome | None
) -> None:
    assert rollout_outcome(body) == outcome


def test_exit_codes_are_the_ones_pipelines_expect() -> None:
    assert (Outcome.READY, Outcome.FAILED, Outcome.TIMED_OUT) == (0, 1, 2)


def test_undo_during_a_canary_or_after_a_rollback_goes_to_stable() -> None:
    assert undo_target(md(stable={"version": 2}), None) == 2


def test_undo_when_settled_goes_to_the_version_the_stable_one_replaced() -> None:
    body = md(
        stable={"version": 3},
        history=[
            {"version": 2, "result": "Promoted", "at": "t1", "replaced": 1},
            {"version": 5, "result": "RolledBack", "at": "t2"},
            {"version": 3, "result": "Promoted", "at": "t3", "replaced": 2},
        ],
    )
    assert undo_target(body, None) == 2
    assert undo_target(body, 1) == 1


@pytest.mark.parametrize(
    ("status", "to_version", "message"),
    [
        ({"stable": {"version": 3}}, None, "no earlier promoted version"),
        ({"stable": {"version": 3}}, 3, "already 3"),
        ({"stable": {"version": 3}, "failedVersions": [4]}, 4, "run retry after undo"),
    ],
)
def test_undo_refuses_what_it_cannot_do(status: dict[str, Any], to_version: int | None, message: str) -> None:
    with pytest.raises(UndoError, match=message):
        undo_target(md(**status), to_version)


def test_namespace_comes_from_the_chosen_context(tmp_path: Path) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [
            {"name": "ml", "context": {"cluster": "c", "user": "u", "namespace": "ml-team"}},
            {"name": "bare", "context": {"cluster": "c", "user": "u"}},
        ],
        "current-context": "ml",
    }
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(config))
    assert context_namespace(str(path), None) == "ml-team"
    assert context_namespace(str(path), "bare") is None


def test_pause_left_counts_down_the_current_steps_pause() -> None:
    started = (NOW - datetime.timedelta(seconds=30)).isoformat()
    body = md(canary={"version": 3, "step": 0, "stepStartedAt": started})
    assert pause_left(body, NOW) == pytest.approx(60)
    assert pause_left(md(canary={"version": 3, "step": 0}), NOW) is None  # not serving yet
    # No steps in the spec: the defaults (10% then 50%, 60s each).
    body["spec"]["rollout"] = {}
    assert pause_left(body, NOW) == pytest.approx(30)


def render(renderable: Any) -> str:
    console = Console(width=300, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


def gated_pod(name: str, version: str, gate: str) -> dict[str, Any]:
    """A running pod of ``version`` whose model gate, and so readiness, is ``gate``."""
    return pod(
        name,
        labels={"serving.modeldeploy.dev/version": version},
        created="2026-11-24T11:58:00Z",
        resource_version="1",
        status=pod_status(
            ip="127.0.0.9",
            condition_statuses={"Ready": gate, "serving.modeldeploy.dev/model-available": gate},
        ),
    )


def test_the_live_view_shows_versions_step_share_pause_checks_and_pod_gates() -> None:
    started = (NOW - datetime.timedelta(seconds=30)).isoformat()
    body = md(
        phase="Progressing",
        stable={"version": 2, "replicas": 2, "readyReplicas": 2},
        canary={
            "version": 3,
            "step": 0,
            "weight": 10,
            "trafficShare": 0.33,
            "replicas": 1,
            "readyReplicas": 0,
            "stepStartedAt": started,
            "analysis": {
                "passed": 4,
                "lastCheck": {"verdict": "Passed", "at": "t", "message": "success 1.0"},
            },
        },
        conditions=[
            {"type": "Progressing", "status": "True", "reason": "CanaryProgressing", "message": "step 1"}
        ],
    )
    text = render(
        rollout_view(body, [gated_pod("mnist-v3-a", "3", "False"), gated_pod("mnist-v2-a", "2", "True")], NOW)
    )
    assert "version 2, 2/2 serving" in text
    assert "1/1, weight 10%, actual share 33%, pause left 60s" in text
    assert "Passed at t: success 1.0" in text
    assert "CanaryProgressing: step 1" in text
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith("mnist-v")}
    assert rows["mnist-v3-a"][1:6] == ["3", "canary", "Running", "no", "shut"]
    assert rows["mnist-v2-a"][1:6] == ["2", "stable", "Running", "yes", "open"]
    assert rows["mnist-v2-a"][-1] == "2m"


def test_list_has_one_line_per_resource_with_its_namespace_under_all_namespaces() -> None:
    other = md(phase="Degraded")
    other["metadata"] = {**other["metadata"], "name": "resnet", "namespace": "vision"}
    text = render(list_table([md(phase="Ready", stable={"version": 3}), other], NOW, all_namespaces=True))
    lines = text.strip().splitlines()
    assert lines[0].split()[:3] == ["NAMESPACE", "NAME", "PHASE"]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["ml", "mnist", "Ready"],
        ["vision", "resnet", "Degraded"],
    ]


@pytest.mark.parametrize(("seconds", "shown"), [(5, "5s"), (125, "2m"), (7300, "2h"), (200000, "2d")])
def test_age_reads_like_kubectl(seconds: int, shown: str) -> None:
    assert age((NOW - datetime.timedelta(seconds=seconds)).isoformat(), NOW) == shown
