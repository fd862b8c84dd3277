"""The operator as a real process (``kopf run``), as the integration suite, the benchmark and
the demo run it: started, probed on its liveness endpoint until healthy, stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from testbed.cluster.localcluster import free_ports

from .wait import answers_ok, wait_for

REPO = Path(__file__).resolve().parents[2]
# `kopf run` with the handlers, as the image runs it (modeldeploy/control/__main__.py).
OPERATOR = "modeldeploy.control"


@dataclass
class OperatorProcess:
    kubeconfig: Path
    log_path: Path
    # Watch only this namespace; None watches all.
    namespace: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    # More `kopf run` options, e.g. --log-format=json.
    options: tuple[str, ...] = ()
    # Its own session: outlives the starting process (the demo), stopped by process group.
    detached: bool = False
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    metrics_port: int = 0

    def command(self) -> list[str]:
        scope = f"--namespace={self.namespace}" if self.namespace else "--all-namespaces"
        liveness = f"--liveness=http://127.0.0.1:{self.port}/healthz"
        return [sys.executable, "-m", OPERATOR, "--standalone", scope, liveness, *self.options]

    def start(self, timeout: float = 60.0) -> OperatorProcess:
        self.port, self.metrics_port = free_ports(2)
        metrics = {
            "MODELDEPLOY_METRICS_ADDRESS": "127.0.0.1",
            "MODELDEPLOY_METRICS_PORT": str(self.metrics_port),
        }
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **metrics, **self.env}
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child process keeps it
        self.process = subprocess.Popen(
            self.command(),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=self.detached,
        )
        wait_for(self.healthy, timeout, what="operator liveness endpoint")
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"operator exited with {self.process.returncode}:\n{self.log()[-5000:]}")
        return answers_ok(f"http://127.0.0.1:{self.port}/healthz")

    def stop(self, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def metrics(self) -> str:
        """What the operator's /metrics serves now (Prometheus text format)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
