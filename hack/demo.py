"""`make demo`: a fresh machine to a rolled-out sample, showing the status as it moves.

python hack/demo.py run [DIR]    # cluster, CRD, operator, sample, then a version change
python hack/demo.py stop [DIR]   # stop the operator it started
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import kubernetes
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from testbed.cluster.localcluster import MODELDEPLOYMENT_CRD, LocalCluster, install_crds  # noqa: E402
from testbed.modelserver.store import NODE_PATH, make_store  # noqa: E402
from testbed.modelserver.traffic import TrafficDriver  # noqa: E402
from testbed.support.kube import kubectl_path  # noqa: E402
from testbed.support.operator import OperatorProcess  # noqa: E402

NAMESPACE = "ml"
SAMPLE = REPO / "manifests" / "samples" / "mnist.yaml"
TRAFFIC_INPUTS = (1.0, 2.0, 9.0, 3.0, 4.0, 8.0, 1.5, 2.5, 7.0, 3.5)


def kubectl(root: Path, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [str(root / "bin" / "kubectl"), f"--kubeconfig={root / 'kubeconfig'}", *args],
        text=True,
        capture_output=True,
        input=stdin,
    )
    if result.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def running_pid(root: Path, name: str) -> int | None:
    """The pid of a background process the demo started earlier, if it still runs."""
    pid_file = root / f"{name}.pid"
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text()), 0)
            return int(pid_file.read_text())
        except ProcessLookupError:
            pass
    return None


def start_background(root: Path, name: str, args: list[str]) -> int:
    """Start (or reuse) a background process of the demo; its pid goes in <root>/<name>.pid."""
    pid = running_pid(root, name)
    if pid is not None:
        return pid
    log = open(root / f"{name}.log", "ab")  # noqa: SIM115 - the process keeps it
    proc = subprocess.Popen(
        [sys.executable, *args],
        env={**os.environ, "KUBECONFIG": str(root / "kubeconfig")},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=REPO,
    )
    (root / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def start_operator(root: Path) -> int:
    """The operator, detached so it outlives the demo (``make cluster-down`` stops it)."""
    pid = running_pid(root, "operator")
    if pid is None:
        pid = OperatorProcess(root / "kubeconfig", root / "operator.log", detached=True).start().pid
        (root / "operator.pid").write_text(str(pid))
    return pid


def start_modelservers(root: Path) -> int:
    """TF Serving cannot be installed here: a TF Serving-compatible server runs the real
    SavedModels on every simulated pod's IP (testbed/modelserver)."""
    return start_background(
        root,
        "modelservers",
        [
            "-m",
            "testbed.modelserver.fleet",
            f"--kubeconfig={root / 'kubeconfig'}",
            f"--namespace={NAMESPACE}",
            f"--node-path={NODE_PATH}={make_store(root / 'models-store')}",
        ],
    )


def start_traffic(root: Path) -> int:
    """40 requests a second; 3 in 10 ask about x >= 5, which version 3's graph refuses."""
    return start_background(
        root,
        "traffic",
        [
            "-m",
            "testbed.modelserver.traffic",
            f"--kubeconfig={root / 'kubeconfig'}",
            f"--namespace={NAMESPACE}",
            "--name=mnist",
            "--rps=40",
            f"--inputs={','.join(str(x) for x in TRAFFIC_INPUTS)}",
        ],
    )


def predict(root: Path, value: float) -> str:
    """One prediction through the routing the Service does, as a client would get it."""
    api = kubernetes.config.new_client_from_config(config_file=str(root / "kubeconfig"))
    try:
        version, answer = TrafficDriver(api, NAMESPACE, "mnist", "mnist").predict(value)
    finally:
        api.close()
    return f"predict x={value}: version {version} answers {answer}"


def step_label(md: dict[str, Any], canary: dict[str, Any]) -> str:
    steps = len(md["spec"]["rollout"].get("steps") or [None, None])
    step = int(canary.get("step", 0))
    return "promoting" if step >= steps else f"step={step + 1}/{steps}"


def summary(md: dict[str, Any]) -> str:
    status = md.get("status") or {}
    stable = (status.get("stable") or {}).get("version", "-")
    line = f"phase={status.get('phase', '-'):<11} stable=v{stable:<2} ready={status.get('ready', '-'):<4}"
    canary = status.get("canary")
    if canary:
        analysis = canary.get("analysis") or {}
        line += (
            f" canary=v{canary['version']} {step_label(md, canary)} weight={canary.get('weight', 0)}%"
            f" serving={canary.get('readyReplicas', 0)}/{canary.get('replicas', 0)}"
            f" checks: {analysis.get('passed', 0)} passed, {analysis.get('failed', 0)} failed,"
            f" {analysis.get('inconclusive', 0)} inconclusive"
        )
    else:
        degraded = next((c for c in status.get("conditions") or [] if c["type"] == "Degraded"), None)
        if degraded and degraded["status"] == "True":
            line += f" Degraded: {degraded['message']}"
    return line


def watch_until(root: Path, phase: str, version: int, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    start = time.monotonic()
    while time.monotonic() < deadline:
        md = json.loads(kubectl(root, "get", "md", "mnist", "-n", NAMESPACE, "-o", "json"))
        line = summary(md)
        if line != last:
            print(f"  {time.monotonic() - start:5.1f}s  {line}", flush=True)
            last = line
        status = md.get("status") or {}
        if (
            status.get("phase") == phase
            and status.get("observedGeneration") == md["metadata"]["generation"]
            and (status.get("stable") or {}).get("version") == version
        ):
            return
        time.sleep(0.3)  # a person watching, not a test waiting
    raise SystemExit(f"not {phase} within {timeout}s; see {root / 'operator.log'}")


def set_version(root: Path, version: int) -> None:
    patch = json.dumps({"spec": {"model": {"version": version}}})
    kubectl(root, "patch", "md", "mnist", "-n", NAMESPACE, "--type=merge", "-p", patch)


def demo_sample() -> str:
    """The sample with its canary timings shortened so the demo takes a minute, not ten."""
    body = yaml.safe_load(SAMPLE.read_text())
    rollout = body["spec"]["rollout"]
    rollout["steps"] = [{"weight": 10, "pause": "5s"}, {"weight": 50, "pause": "5s"}]
    rollout["analysis"].update({"interval": "2s", "minRequests": 10})
    return yaml.safe_dump(body)


def run(root: Path) -> None:
    print("==> control plane (built from Go modules on first use: several minutes, then cached)", flush=True)
    cluster = LocalCluster(root, crds=(MODELDEPLOYMENT_CRD,))
    cluster.up()
    (root / "bin").mkdir(exist_ok=True)
    link = root / "bin" / "kubectl"
    if not link.exists():
        link.symlink_to(kubectl_path())
    print("==> CRD", flush=True)
    # Again on a cluster left running by an earlier demo: the CRD may have changed since.
    install_crds(link, cluster.kubeconfig, (MODELDEPLOYMENT_CRD,), 60)
    kubectl(root, "wait", "--for=condition=Ready", "node", "--all", "--timeout=60s")
    print(f"==> operator (pid {start_operator(root)}, log {root / 'operator.log'})", flush=True)
    print(
        "==> a TF Serving-compatible model server on the simulated pods' IPs (real SavedModels: "
        "version 1 is y = 0.5x + 2, version 2 y = 0.5x + 3, version 3 refuses x >= 5), "
        "and client traffic (40 req/s)",
        flush=True,
    )
    start_modelservers(root)
    start_traffic(root)
    subprocess.run(
        [
            str(root / "bin" / "kubectl"),
            f"--kubeconfig={root / 'kubeconfig'}",
            "create",
            "namespace",
            NAMESPACE,
        ],
        capture_output=True,
    )
    kubectl(root, "delete", "md", "mnist", "-n", NAMESPACE, "--ignore-not-found", "--wait=true")
    print(f"==> kubectl apply -n {NAMESPACE} -f manifests/samples/mnist.yaml (canary pauses shortened to 5s)")
    kubectl(root, "apply", "-n", NAMESPACE, "-f", "-", stdin=demo_sample())
    watch_until(root, "Ready", 1)
    predictions = [f"after version 1 rolled out:    {predict(root, 1.0)}"]
    print(
        "==> a new model version: spec.model.version 1 -> 2 (canary 10%, 50%, analysed, promoted)", flush=True
    )
    set_version(root, 2)
    watch_until(root, "Ready", 2)
    predictions.append(f"after version 2 was promoted:  {predict(root, 1.0)}")
    print(
        "==> a bad version: version 3's graph refuses x >= 5, 30% of the traffic (analysis rolls it back)",
        flush=True,
    )
    set_version(root, 3)
    watch_until(root, "Degraded", 2)
    predictions.append(f"after version 3 rolled back:   {predict(root, 1.0)}")
    print(kubectl(root, "get", "md,deploy,svc,pods", "-n", NAMESPACE))
    print(
        "Look around:\n"
        f"  export KUBECONFIG={root / 'kubeconfig'} PATH={root / 'bin'}:{REPO / '.venv' / 'bin'}:$PATH\n"
        f"  kubectl get md -n {NAMESPACE}\n"
        f"  kubectl modeldeploy get mnist -w -n {NAMESPACE}  # also: status --watch, list, history, undo\n"
        f"  kubectl get md mnist -n {NAMESPACE} -o yaml      # status: conditions, stable, canary, history\n"
        f"  kubectl get events -n {NAMESPACE}\n"
        f"  tail -f {root / 'operator.log'}\n"
        "Stop everything:  make cluster-down"
    )
    print("==> predictions through the Service's routing, computed by TensorFlow:")
    print("\n".join(f"  {line}" for line in predictions))


def stop(root: Path) -> None:
    for name in ("traffic", "modelservers", "operator"):
        pid_file = root / f"{name}.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pid_file.read_text()), signal.SIGTERM)
            pid_file.unlink()
            print(f"{name} stopped", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("run", "stop"):
        raise SystemExit(__doc__)
    directory = Path(sys.argv[2] if len(sys.argv) > 2 else REPO / ".cluster").resolve()
    run(directory) if sys.argv[1] == "run" else stop(directory)
