"""The ``kubectl modeldeploy`` plugin, driven as a subprocess against the
real control plane: ``status --watch`` exit codes for CI pipelines, the ``get -w`` live view,
``history`` and ``undo``, ``list``, and the namespace taken from the kubeconfig context."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from testbed.modelserver.traffic import TrafficDriver
from testbed.support.wait import wait_for

from .conftest import Cluster, Operator, sample
from .test_canary import canary_sample, serving_v1

pytestmark = pytest.mark.timeout(300)
PLUGIN = [sys.executable, "-m", "modeldeploy.cli.main"]


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
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    # Started right after the edit: the status still says Ready, for the generation before.
    ready = plugin("status", "mnist", "--watch", "--timeout", "120s")
    assert ready.exit_code(150) == 0, ready.output
    assert "Progressing, canary version 2 step 1 at 20%" in ready.output
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
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 3}}})
    failed = plugin("status", "mnist", "--watch", "--timeout", "120s")
    assert failed.exit_code(150) == 1, failed.output
    assert failed.lines[-1].split(" ", 1)[1].startswith("Degraded")

    # A held canary: the timeout, exit 2, and it says so.
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}, "rollout": {"paused": True}}})
    held = plugin("status", "mnist", "--watch", "--timeout", "3s")
    assert held.exit_code(30) == 2, held.output
    assert held.lines[-1].startswith("timed out after 3s")


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

    def run(*args: str) -> str:
        done = subprocess.run(
            [*PLUGIN, *args, f"--kubeconfig={kubeconfig}"], capture_output=True, text=True, check=True
        )
        return done.stdout + done.stderr  # "No ModelDeployments found" goes to stderr

    here = run("list")
    assert [line.split()[0] for line in here.splitlines()] == ["NAME", "mnist", "resnet"]
    assert "No ModelDeployments found in kube-public." in run("list", "--context", "elsewhere")
    everywhere = run("list", "-A", "--context", "elsewhere")
    assert [namespace, "mnist"] in [line.split()[:2] for line in everywhere.splitlines()]
    assert "resnet" in run("status", "resnet")  # a named resource, found without -n
