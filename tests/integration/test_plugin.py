"""The ``kubectl modeldeploy`` plugin, driven as a subprocess against the real control plane:
exit codes for CI pipelines (``status``, ``set version --watch``), the ``get -w`` live view,
``history`` and ``undo``, ``list``, the namespace taken from the kubeconfig context, one-line
errors for every verb, ``-o json|yaml``, ``promote``'s values, ``version``, shell completion,
and terminating pods."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from modeldeploy.api.actions import parse_promote
from modeldeploy.api.names import ANNOTATION_PROMOTE, CONDITION_MODEL_AVAILABLE
from testbed.modelserver.traffic import TrafficDriver
from testbed.support.priority import background_pool
from testbed.support.wait import wait_for

from .conftest import Cluster, Operator, sample
from .test_canary import canary, canary_sample, serving_v1

pytestmark = pytest.mark.timeout(300)
PLUGIN = [sys.executable, "-m", "modeldeploy.cli.main"]
# Keeps a deleted test pod in place, Terminating, until the test lets it go.
HOLD = "test.modeldeploy.dev/hold"


class Running:
    """A plugin process whose output (stderr included) is read as it comes."""

    def __init__(self, args: list[str]) -> None:
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def exit_code(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def plugin(cluster: Cluster, namespace: str) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(*args: str) -> Running:
        running = Running([*PLUGIN, *args, "-n", namespace, f"--kubeconfig={cluster.kubeconfig}"])
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def views(running: Running) -> list[str]:
    """``get -w``'s views so far: each starts at its Name line."""
    return ["Name" + view for view in running.output.split("\nName")[1:]]


def test_status_watch_exits_0_on_ready_1_on_rollback_2_on_timeout_and_get_w_follows_the_canary(
    cluster: Cluster,
    namespace: str,
    operator: Operator,
    traffic: Callable[..., TrafficDriver],
    plugin: Callable[..., Running],
) -> None:
    serving_v1(cluster, namespace, canary_sample())
    driver = traffic()
    live = plugin("get", "mnist", "-w")
    wait_for(lambda: views(live), 20, what="get -w's first view")
    assert plugin("status", "mnist").exit_code(30) == 0  # Ready now
    edit = plugin("set", "version", "mnist", "2")
    assert edit.exit_code(30) == 0, edit.output
    assert "spec.model.version 1 -> 2" in edit.output
    # Started right after the edit: the status still says Ready, for the generation before.
    # The watch must follow the canary, not end there. Which step it first sees depends on
    # how long its own start takes: the first step pauses 2 s, a busy machine's start as much.
    ready = plugin("status", "mnist", "--watch", "--timeout", "120s")
    assert ready.exit_code(150) == 0, ready.output
    assert re.search(r"Progressing, canary version 2 step [12] at (20|50)%", ready.output), ready.output
    assert ready.lines[-1].split(" ", 1)[1].startswith("Ready")

    # get -w redrew the view as the canary went: a step with its share, countdown and pod
    # gates, then Ready on version 2.
    during = [v for v in views(live) if "weight 20%, actual share 33%, pause left" in v]
    assert during, live.output
    assert any(" canary " in line and " open " in line for line in during[-1].splitlines())
    wait_for(lambda: "version 2, 2/2 serving" in views(live)[-1] and "Ready" in views(live)[-1], 20)
    assert live.process.poll() is None  # still following

    # history and undo: back to the version 2 replaced.
    shown = subprocess.run(
        [*PLUGIN, "history", "mnist", "-n", namespace, f"--kubeconfig={cluster.kubeconfig}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert [line.split()[1:3] for line in shown.splitlines()[1:]] == [["2", "Promoted"]]
    undo = plugin("undo", "mnist")
    assert undo.exit_code(30) == 0, undo.output
    assert "spec.model.version 2 -> 1" in undo.output
    back = plugin("status", "mnist", "--watch", "--timeout", "120s")
    assert back.exit_code(150) == 0, back.output
    assert cluster.get_md(namespace, "mnist")["status"]["stable"]["version"] == 1

    # Version 3 refuses inputs >= 5: rolled back, exit 1.
    driver.inputs = (1.0, 9.0)
    set_and_wait = plugin("set", "version", "mnist", "3", "--watch", "--timeout", "120s")
    wait_for(lambda: "spec.model.version 1 -> 3" in set_and_wait.output, 30, what="set version's patch")
    failed = plugin("status", "mnist", "--watch", "--timeout", "120s")
    assert failed.exit_code(150) == 1, failed.output
    assert failed.lines[-1].split(" ", 1)[1].startswith("Degraded")
    assert set_and_wait.exit_code(30) == 1, set_and_wait.output
    assert set_and_wait.lines[-1].split(" ", 1)[1].startswith("Degraded")
    assert plugin("status", "mnist").exit_code(30) == 1  # without --watch: by the current state

    # A held canary: the timeout, exit 2, and it says so.
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}, "rollout": {"paused": True}}})
    held = plugin("status", "mnist", "--watch", "--timeout", "3s")
    assert held.exit_code(30) == 2, held.output
    assert held.lines[-1].startswith("timed out after 3s")
    assert plugin("status", "mnist").exit_code(30) == 2  # without --watch: not ended yet


def test_list_and_the_namespace_from_the_kubeconfig_context(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    cluster.create_md(namespace, sample("mnist"))
    cluster.create_md(namespace, sample("resnet"))
    # A kubeconfig whose current context names the test's namespace, and one naming none.
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    current = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    current["context"]["namespace"] = namespace
    config["contexts"].append(
        {"name": "elsewhere", "context": {**current["context"], "namespace": "kube-public"}}
    )
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))

    def run(*args: str, exit_code: int = 0) -> str:
        done = subprocess.run([*PLUGIN, *args, f"--kubeconfig={kubeconfig}"], capture_output=True, text=True)
        assert done.returncode == exit_code, done.stdout + done.stderr
        return done.stdout + done.stderr  # "No ModelDeployments found" goes to stderr

    here = run("list")
    assert [line.split()[0] for line in here.splitlines()] == ["NAME", "mnist", "resnet"]
    assert "No ModelDeployments found in kube-public." in run("list", "--context", "elsewhere")
    everywhere = run("list", "-A", "--context", "elsewhere")
    assert [namespace, "mnist"] in [line.split()[:2] for line in everywhere.splitlines()]
    # A named resource, found without -n; no operator runs, so its rollout has not ended: 2.
    assert "resnet" in run("status", "resnet", exit_code=2)


# Every verb, as a user types it, against the resource "mnist".
VERBS: tuple[tuple[str, ...], ...] = (
    ("get", "mnist"),
    ("get", "mnist", "-w"),
    ("get", "mnist", "-o", "json"),
    ("status", "mnist"),
    ("status", "mnist", "--watch", "--timeout", "5s"),
    ("list",),
    ("list", "-A"),
    ("history", "mnist"),
    ("undo", "mnist", "--to-version", "1"),
    ("set", "version", "mnist", "2"),
    ("promote", "mnist"),
    ("promote", "mnist", "--full"),
    ("abort", "mnist"),
    ("retry", "mnist"),
    ("pause", "mnist"),
    ("resume", "mnist"),
    ("version",),
)
# The verbs that name one resource: a missing one is a 404.
NAMED = tuple(verb for verb in VERBS if "mnist" in verb)
# How long a batch of plugin processes may take, two at a time.
RUN_ALL_SECONDS = 240
# Each plugin process spends about 2 CPU-seconds starting. Eighteen at once held both cores
# for a quarter of a minute per batch, and the other test worker's canaries and model
# servers starved meanwhile; two at a time take about as long on two cores and leave it its
# share. They also run at background priority.
PLUGINS_AT_ONCE = 2


def run_all(
    verbs: tuple[tuple[str, ...], ...], *extra: str, env: dict[str, str] | None = None
) -> dict[tuple[str, ...], subprocess.CompletedProcess[str]]:
    """Every verb (each a process of its own), with the same extra arguments."""
    deadline = time.monotonic() + RUN_ALL_SECONDS  # one deadline for the lot

    def run(verb: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*PLUGIN, *verb, *extra],
            capture_output=True,
            text=True,
            env=env,
            timeout=max(1.0, deadline - time.monotonic()),
        )

    with background_pool(PLUGINS_AT_ONCE) as pool:
        return dict(zip(verbs, pool.map(run, verbs), strict=True))


Results = dict[tuple[str, ...], subprocess.CompletedProcess[str]]


def assert_one_line_errors(done: Results, *expected: str) -> None:
    """Each verb failed with exit 3 and one line ``error: ...`` holding every expected text."""
    for verb, result in done.items():
        shown = f"{' '.join(verb)}: exit {result.returncode}\n{result.stderr}"
        assert result.returncode == 3, shown
        lines = result.stderr.splitlines()
        assert len(lines) == 1, shown
        assert lines[0].startswith("error: "), shown
        assert all(text in lines[0] for text in expected), shown


def kubeconfig_with_token(cluster: Cluster, path: Path, token: str) -> Path:
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    for user in config["users"]:
        user["user"] = {"token": token}
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.timeout(900)
def test_every_verb_says_why_it_cannot_reach_the_cluster_in_one_line(tmp_path: Path) -> None:
    unreachable = tmp_path / "unreachable"
    unreachable.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    assert_one_line_errors(
        run_all(VERBS, f"--kubeconfig={unreachable}"), "unable to connect to the server 127.0.0.1:1"
    )
    broken = tmp_path / "broken"
    broken.write_text("clusters: [{name: c\n")
    assert_one_line_errors(run_all(VERBS, f"--kubeconfig={broken}"), "kubeconfig is not valid YAML")
    # No --kubeconfig, no $KUBECONFIG, no ~/.kube/config, not in a pod.
    bare = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    assert_one_line_errors(run_all(VERBS, env={**bare, "HOME": str(tmp_path)}), "kubeconfig: none found")


@pytest.mark.timeout(900)
def test_every_verb_shows_the_servers_message_when_refused(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    # A token the API server does not accept (expired, revoked, mistyped): 401.
    stale = kubeconfig_with_token(cluster, tmp_path / "stale", "0" * 32)
    assert_one_line_errors(
        run_all(VERBS, "-n", namespace, f"--kubeconfig={stale}"), "must be logged in to the server"
    )
    # A real identity with no RBAC at all: 403, and the server names the verb and the resource.
    cluster.core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    token = cluster.core.create_namespaced_service_account_token(
        "nobody", namespace, {"spec": {"expirationSeconds": 600}}
    ).status.token
    nobody = kubeconfig_with_token(cluster, tmp_path / "nobody", token)
    refused = run_all(VERBS, "-n", namespace, f"--kubeconfig={nobody}")
    assert_one_line_errors(refused, "from server (Forbidden)", f"system:serviceaccount:{namespace}:nobody")
    assert 'cannot get resource "modeldeployments"' in refused[("get", "mnist")].stderr
    assert 'cannot list resource "modeldeployments"' in refused[("list", "-A")].stderr
    assert 'cannot patch resource "modeldeployments"' in refused[("pause", "mnist")].stderr
    assert 'cannot list resource "deployments"' in refused[("version",)].stderr


@pytest.mark.timeout(900)
def test_a_missing_resource_and_a_conflicting_edit_are_one_line_with_the_servers_message(
    cluster: Cluster, namespace: str
) -> None:
    target = ("-n", namespace, f"--kubeconfig={cluster.kubeconfig}")
    assert_one_line_errors(
        run_all(NAMED, *target),
        "from server (NotFound)",
        'modeldeployments.serving.modeldeploy.dev "mnist" not found',
    )
    seen = cluster.create_md(namespace, sample("mnist"))["metadata"]["resourceVersion"]
    cluster.patch_md(namespace, "mnist", {"metadata": {"labels": {"edited": "meanwhile"}}})
    edit = ("set", "version", "mnist", "2", "--resource-version", seen)
    conflict = run_all((edit,), *target)
    assert_one_line_errors(conflict, "from server (Conflict)", "the object has been modified")
    assert cluster.get_md(namespace, "mnist")["spec"]["model"]["version"] == 1  # nothing overwritten
    # The usage errors are 4, not 2 (timed out) nor 3.
    usage = run_all((("status", "mnist", "--timeout", "soon"), ("set", "version", "mnist", "0")), *target)
    assert {verb: result.returncode for verb, result in usage.items()} == dict.fromkeys(usage, 4)


def test_output_promote_values_version_and_completion(cluster: Cluster, namespace: str) -> None:
    cluster.create_md(namespace, sample("mnist"))
    target = ("-n", namespace, f"--kubeconfig={cluster.kubeconfig}")
    done = run_all(
        (
            ("get", "mnist", "-o", "yaml"),
            ("list", "-o", "json"),
            ("history", "mnist", "-o", "json"),
            ("status", "mnist", "-o", "json"),
        ),
        *target,
    )
    assert yaml.safe_load(done[("get", "mnist", "-o", "yaml")].stdout)["metadata"]["name"] == "mnist"
    listed = json.loads(done[("list", "-o", "json")].stdout)
    assert (listed["kind"], [m["metadata"]["name"] for m in listed["items"]]) == ("List", ["mnist"])
    assert json.loads(done[("history", "mnist", "-o", "json")].stdout) == []
    assert done[("status", "mnist", "-o", "json")].returncode == 2  # no operator: not ended
    assert json.loads(done[("status", "mnist", "-o", "json")].stdout) == {}

    # promote writes one step, promote --full every step (api.actions' values).
    def promote_value(*args: str) -> str:
        subprocess.run([*PLUGIN, "promote", "mnist", *args, *target], check=True, capture_output=True)
        value: str = cluster.get_md(namespace, "mnist")["metadata"]["annotations"][ANNOTATION_PROMOTE]
        return value

    assert parse_promote(promote_value()).full is False
    assert promote_value().startswith("step:")
    assert parse_promote(promote_value("--full")).full is True

    # version: the plugin's, and the operator's Deployment's image, read through the API server.
    labels = {"app.kubernetes.io/name": "modeldeploy-operator", "app.kubernetes.io/version": "9.9.9"}
    cluster.apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "modeldeploy", "labels": labels},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "operator", "image": "modeldeploy/operator:9.9.9"}]},
                },
            },
        },
    )
    shown = subprocess.run([*PLUGIN, "version", *target], check=True, capture_output=True, text=True).stdout
    assert shown.splitlines()[0].startswith("plugin: ")
    assert f"operator: {namespace}/modeldeploy image modeldeploy/operator:9.9.9 (version 9.9.9)" in shown

    # Completion: the scripts, and the answers they ask the plugin for.
    for shell in ("bash", "zsh"):
        script = subprocess.run(
            [*PLUGIN, "completion", shell], check=True, capture_output=True, text=True
        ).stdout
        assert "_KUBECTL_MODELDEPLOY_COMPLETE" in script
        assert "kubectl-modeldeploy" in script
    answer = subprocess.run(
        PLUGIN,
        env={
            **os.environ,
            "_KUBECTL_MODELDEPLOY_COMPLETE": "bash_complete",
            "COMP_WORDS": "kubectl-modeldeploy se",
            "COMP_CWORD": "1",
        },
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert answer.splitlines() == ["plain,set"]


def test_a_terminating_pod_is_shown_terminating_not_serving(cluster: Cluster, namespace: str) -> None:
    cluster.create_md(namespace, sample("mnist"))
    # A pod of version 1 that passed its model gate, held by a finalizer once deleted, on a node
    # no kubelet runs: its status is exactly what the test writes.
    labels = {"app.kubernetes.io/name": "mnist", "serving.modeldeploy.dev/version": "1"}
    cluster.core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "mnist-v1-gone", "labels": labels, "finalizers": [HOLD]},
            "spec": {"nodeName": "no-such-node", "containers": [{"name": "c", "image": "none"}]},
        },
    )
    conditions = [
        {"type": "Ready", "status": "True"},
        {"type": CONDITION_MODEL_AVAILABLE, "status": "True"},
    ]
    cluster.core.patch_namespaced_pod_status(
        "mnist-v1-gone", namespace, {"status": {"phase": "Running", "conditions": conditions}}
    )
    try:
        cluster.core.delete_namespaced_pod("mnist-v1-gone", namespace, grace_period_seconds=0)
        shown = subprocess.run(
            [*PLUGIN, "get", "mnist", "-n", namespace, f"--kubeconfig={cluster.kubeconfig}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        row = next(line.split() for line in shown.splitlines() if line.startswith("mnist-v1-gone"))
        assert row[3:6] == ["Terminating", "no", "-"], shown
    finally:
        cluster.core.patch_namespaced_pod("mnist-v1-gone", namespace, {"metadata": {"finalizers": None}})


def test_promote_passes_one_step_and_promote_full_every_remaining_one(
    cluster: Cluster,
    namespace: str,
    operator: Operator,
    traffic: Callable[..., TrafficDriver],
    plugin: Callable[..., Running],
) -> None:
    # A first step that waits for a person, then pauses no test outlasts.
    steps = [{"weight": 10, "pause": "Manual"}, {"weight": 30, "pause": "5m"}, {"weight": 50, "pause": "5m"}]
    serving_v1(cluster, namespace, canary_sample(steps=steps, progressDeadlineSeconds=600))
    traffic()
    assert plugin("set", "version", "mnist", "2").exit_code(30) == 0
    wait_for(
        lambda: (canary(cluster, namespace) or {}).get("waitingForPromote"), 30, what="waiting for promote"
    )
    shown = plugin("get", "mnist")
    assert shown.exit_code(30) == 0
    assert "waiting for promote" in shown.output
    assert plugin("promote", "mnist").exit_code(30) == 0
    wait_for(lambda: (canary(cluster, namespace) or {}).get("step") == 1, 30, what="the canary at step 2")
    assert cluster.get_md(namespace, "mnist")["status"]["stable"]["version"] == 1
    assert plugin("promote", "mnist", "--full").exit_code(30) == 0
    md = cluster.wait_phase(namespace, "mnist", "Ready", timeout=60)
    assert md["status"]["stable"]["version"] == 2
