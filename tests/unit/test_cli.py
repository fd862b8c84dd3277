"""The plugin's pure parts: its exit codes, ``undo``'s choice of version, the promote value it
writes, the one-line errors, the namespace a kubeconfig context names, and what the views show."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import urllib3
import yaml
from rich.console import Console

from modeldeploy.api.actions import PromoteRequest, format_promote, parse_promote
from modeldeploy.cli.connection import context_namespace
from modeldeploy.cli.errors import describe
from modeldeploy.cli.main import main
from modeldeploy.cli.outcomes import ExitCode, UndoError, rollout_outcome, undo_target
from modeldeploy.cli.views import (
    age,
    document,
    history_table,
    list_document,
    list_table,
    pause_left,
    rollout_view,
    status_text,
)

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
        (md(phase="Ready"), ExitCode.READY),
        (md(phase="Degraded"), ExitCode.FAILED),  # rolled back or aborted
        (md(phase="Failed"), ExitCode.FAILED),
        (md(phase="Progressing"), None),
        (md(phase="Pending"), None),
        # Ready, but for the spec before the last edit: keep waiting.
        (md(generation=3, phase="Ready"), None),
        (md(generation=3, phase="Degraded"), None),
    ],
)
def test_status_watch_ends_only_at_the_current_generation(
    body: dict[str, Any], outcome: ExitCode | None
) -> None:
    assert rollout_outcome(body) == outcome


def test_exit_codes_are_the_ones_pipelines_expect() -> None:
    assert (ExitCode.READY, ExitCode.FAILED, ExitCode.TIMED_OUT) == (0, 1, 2)
    assert (ExitCode.API_ERROR, ExitCode.USAGE_ERROR, ExitCode.INTERRUPTED) == (3, 4, 130)
    assert len(set(ExitCode)) == len(ExitCode.__members__)  # no two meanings share a code


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


def test_the_view_names_the_shard_and_its_holder_only_when_sharded() -> None:
    sharded = md(phase="Ready", stable={"version": 2}, shard=7, shardHolder="modeldeploy-operator-1")
    assert "7, held by modeldeploy-operator-1" in render(rollout_view(sharded, [], NOW))
    assert "Shard" not in render(rollout_view(md(phase="Ready", stable={"version": 2}), [], NOW))


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


# Server text a tenant can write (a status message, a reason): rich markup in it must show
# as typed, neither crash the view ("[/]" closes nothing) nor become a hyperlink.
MARKUP = "closed [/] and [link=https://evil.example]click[/link] and [bold red]loud[/]"


def markup_body() -> dict[str, Any]:
    body = md(
        phase="Degraded",
        stable={"version": 2},
        conditions=[{"type": "Degraded", "status": "True", "reason": "[b]Odd[/b]", "message": MARKUP}],
        history=[{"at": "t", "version": 3, "result": "RolledBack", "reason": MARKUP}],
    )
    body["metadata"] = {**body["metadata"], "name": "m[i]x"}
    return body


@pytest.mark.parametrize(
    "view",
    [
        pytest.param(lambda body: rollout_view(body, [gated_pod("p[/]", "2", "True")], NOW), id="get"),
        pytest.param(lambda body: list_table([body], NOW, all_namespaces=True), id="list"),
        pytest.param(history_table, id="history"),
    ],
)
def test_server_text_is_shown_as_written_never_as_markup(view: Any) -> None:
    console = Console(width=400, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(view(markup_body()))
    text = console.export_text()
    assert MARKUP in text
    assert "m[i]x" in text or view is history_table
    assert not any(segment.style and segment.style.link for segment in console._record_buffer)


@pytest.mark.parametrize(("seconds", "shown"), [(5, "5s"), (125, "2m"), (7300, "2h"), (200000, "2d")])
def test_age_reads_like_kubectl(seconds: int, shown: str) -> None:
    assert age((NOW - datetime.timedelta(seconds=seconds)).isoformat(), NOW) == shown


def test_a_terminating_pod_is_shown_terminating_never_serving() -> None:
    going = gated_pod("mnist-v3-a", "3", "True")
    going["metadata"]["deletionTimestamp"] = "2026-11-24T11:59:50Z"
    text = render(rollout_view(md(phase="Degraded", stable={"version": 2}), [going], NOW))
    row = next(line.split() for line in text.splitlines() if line.startswith("mnist-v3-a"))
    assert row[3:6] == ["Terminating", "no", "-"]


@pytest.mark.parametrize(
    ("value", "full", "token"),
    [
        ("step:2026-11-24T12:00:00.000000Z", False, "2026-11-24T12:00:00.000000Z"),
        ("full:2026-11-24T12:00:00.000000Z", True, "2026-11-24T12:00:00.000000Z"),
        # What the Argo CD action and plugins before one-step promote write: every step.
        ("2026-11-24T12:00:00Z", True, "2026-11-24T12:00:00Z"),
    ],
)
def test_the_promote_value_says_one_step_or_all(value: str, full: bool, token: str) -> None:
    assert parse_promote(value) == PromoteRequest(full=full, token=token)


@pytest.mark.parametrize("full", [False, True])
def test_the_plugin_writes_a_promote_value_the_operator_reads_back(full: bool) -> None:
    written = format_promote(PromoteRequest(full=full, token="t1"))
    assert written == ("full:t1" if full else "step:t1")
    assert parse_promote(written) == PromoteRequest(full=full, token="t1")


def api_error(status: int, reason: str, message: str) -> kubernetes.client.exceptions.ApiException:
    exc = kubernetes.client.exceptions.ApiException(status=status, reason=reason)
    exc.body = json.dumps({"kind": "Status", "status": "Failure", "reason": reason, "message": message})
    return exc


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (
            api_error(403, "Forbidden", 'modeldeployments "m" is forbidden: User "u" cannot get resource'),
            'from server (Forbidden): modeldeployments "m" is forbidden: User "u" cannot get resource',
        ),
        (api_error(404, "NotFound", '"m" not found'), 'from server (NotFound): "m" not found'),
        (
            api_error(409, "Conflict", "the object has been modified"),
            "from server (Conflict): the object has been modified",
        ),
        (
            api_error(401, "Unauthorized", "Unauthorized"),
            "You must be logged in to the server (Unauthorized)",
        ),
        (kubernetes.client.exceptions.ApiException(status=502, reason="Bad Gateway"), "502 Bad Gateway"),
        (kubernetes.config.ConfigException("no context"), "kubeconfig: no context"),
        (UndoError("spec.model.version is already 3"), "spec.model.version is already 3"),
    ],
)
def test_errors_are_one_line_with_the_servers_message(error: Exception, line: str) -> None:
    message, _ = describe(error)
    assert line in message
    assert "\n" not in message


def test_an_unreachable_server_names_where_and_why_in_one_line() -> None:
    pool = urllib3.HTTPSConnectionPool("127.0.0.1", 1)
    connection = urllib3.connection.HTTPSConnection("127.0.0.1", 1)
    refused = urllib3.exceptions.NewConnectionError(
        connection, "Failed to establish a new connection: refused"
    )
    message, code = describe(urllib3.exceptions.MaxRetryError(pool, "/api", refused))
    assert (message, code) == ("unable to connect to the server 127.0.0.1:1: refused", ExitCode.API_ERROR)


def test_error_kinds_map_to_their_exit_codes() -> None:
    assert describe(api_error(403, "Forbidden", "no"))[1] == ExitCode.API_ERROR
    assert describe(yaml.YAMLError("bad"))[1] == ExitCode.API_ERROR
    assert describe(UndoError("nothing to undo"))[1] == ExitCode.USAGE_ERROR


def test_documents_are_the_objects_as_sent() -> None:
    body = md(phase="Ready")
    assert json.loads(document(body, "json")) == body
    assert yaml.safe_load(document(body, "yaml")) == body
    other = md()
    other["metadata"] = {**other["metadata"], "namespace": "a"}
    listed = list_document([body, other])
    assert listed["kind"] == "List"
    assert [m["metadata"]["namespace"] for m in listed["items"]] == ["a", "ml"]


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "mnist", "--timeout", "soon"],
        ["nosuchverb"],
        ["get"],
        ["set", "version", "mnist", "zero"],
        ["get", "mnist", "-o", "wide"],
    ],
)
def test_usage_errors_exit_4_never_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == ExitCode.USAGE_ERROR
    assert "Traceback" not in capsys.readouterr().err


def test_help_lists_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    shown = capsys.readouterr().out
    for code in ExitCode:
        assert re.search(rf"^ +{int(code)}  \w", shown, re.MULTILINE), code


def test_a_missing_kubeconfig_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["list", f"--kubeconfig={tmp_path / 'none'}"]) == ExitCode.API_ERROR
    assert capsys.readouterr().err == f"error: kubeconfig: {tmp_path / 'none'}: no such file\n"


def test_the_live_view_and_status_show_the_relative_check_with_both_versions() -> None:
    relative_check = {
        "result": "Failed",
        "canarySuccessRate": 0.98,
        "stableSuccessRate": 1.0,
        "pValue": 0.0002,
        "canaryLatencyP99Ms": 130.5,
        "stableLatencyP99Ms": 99.0,
        "latencyPValue": 0.2,
    }
    message = "canary 2% errors vs stable 0%: worse by more than 0.5%, p < 0.001 at 0.95"
    body = md(
        phase="Progressing",
        stable={"version": 2, "replicas": 2, "readyReplicas": 2},
        canary={
            "version": 3,
            "analysis": {
                "failed": 1,
                "lastCheck": {"verdict": "Failed", "at": "t", "message": message, "relative": relative_check},
            },
        },
    )
    shown = (
        "Failed, success canary 98.00% vs stable 100.00% (p < 0.001), "
        "p99 canary 130.5ms vs stable 99ms (p = 0.200)"
    )
    view = " ".join(render(rollout_view(body, [], NOW)).split())
    assert f"Vs stable {shown}" in view
    assert message in view
    assert f"vs stable: {shown}" in status_text(body)
