"""`make demo`: a fresh machine to a rolled-out sample, showing the status as it moves.

    python hack/demo.py run [DIR]    # cluster, CRD, operator, sample, then a version change
    python hack/demo.py stop [DIR]   # stop the operator it started
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.cluster.localcluster import LocalCluster, build_binaries  # noqa: E402

NAMESPACE = "ml"
SAMPLE = REPO / "manifests" / "samples" / "mnist.yaml"


def kubectl(root: Path, *args: str) -> str:
    result = subprocess.run(
        [str(root / "bin" / "kubectl"), f"--kubeconfig={root / 'kubeconfig'}", *args],
        text=True, capture_output=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def start_operator(root: Path) -> int:
    pid_file = root / "operator.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text())
        try:
            os.kill(pid, 0)
            return pid
        except ProcessLookupError:
            pass
    log = open(root / "operator.log", "ab")  # noqa: SIM115 - the operator keeps it
    proc = subprocess.Popen(
        [sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces",
         "--liveness=http://127.0.0.1:0/healthz", "-m", "modeldeploy.handlers"],
        env={**os.environ, "KUBECONFIG": str(root / "kubeconfig")},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO,
    )
    pid_file.write_text(str(proc.pid))
    return proc.pid


def summary(md: dict[str, object]) -> str:
    status = md.get("status") or {}
    assert isinstance(status, dict)
    conditions = " ".join(
        f"{c['type']}={c['status']}" for c in status.get("conditions") or [] if c["type"] != "Available"
    )
    stable = (status.get("stable") or {}).get("version", "-")
    return (
        f"phase={status.get('phase', '-'):<11} stable=v{stable:<3} ready={status.get('ready', '-'):<5} "
        f"{conditions}"
    )


def watch_until_ready(root: Path, version: int, timeout: float = 180.0) -> None:
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
            status.get("phase") == "Ready"
            and status.get("observedGeneration") == md["metadata"]["generation"]
            and (status.get("stable") or {}).get("version") == version
        ):
            return
        time.sleep(0.3)
    raise SystemExit(f"not Ready within {timeout}s; see {root / 'operator.log'}")


def run(root: Path) -> None:
    print("==> control plane (built from Go modules on first use: several minutes, then cached)", flush=True)
    bin_dir = build_binaries()
    cluster = LocalCluster(root)
    cluster.up()
    (root / "bin").mkdir(exist_ok=True)
    link = root / "bin" / "kubectl"
    if not link.exists():
        link.symlink_to(bin_dir / "kubectl")
    print("==> CRD", flush=True)
    kubectl(root, "apply", "--server-side", "-f", str(REPO / "crds" / "serving.modeldeploy.dev_modeldeployments.yaml"))
    kubectl(root, "wait", "--for=condition=Established", "crd/modeldeployments.serving.modeldeploy.dev")
    kubectl(root, "wait", "--for=condition=Ready", "node", "--all", "--timeout=60s")
    print(f"==> operator (pid {start_operator(root)}, log {root / 'operator.log'})", flush=True)
    subprocess.run(
        [str(root / "bin" / "kubectl"), f"--kubeconfig={root / 'kubeconfig'}", "create", "namespace", NAMESPACE],
        capture_output=True,
    )
    kubectl(root, "delete", "md", "mnist", "-n", NAMESPACE, "--ignore-not-found", "--wait=true")
    print(f"==> kubectl apply -n {NAMESPACE} -f manifests/samples/mnist.yaml", flush=True)
    kubectl(root, "apply", "-n", NAMESPACE, "-f", str(SAMPLE))
    watch_until_ready(root, 1)
    print("==> new model version: spec.model.version 1 -> 2", flush=True)
    kubectl(root, "patch", "md", "mnist", "-n", NAMESPACE, "--type=merge", "-p", '{"spec":{"model":{"version":2}}}')
    watch_until_ready(root, 2)
    print(kubectl(root, "get", "md,deploy,svc,pods", "-n", NAMESPACE))
    print(
        "Look around:\n"
        f"  export KUBECONFIG={root / 'kubeconfig'} PATH={root / 'bin'}:$PATH\n"
        f"  kubectl get md -n {NAMESPACE}\n"
        f"  kubectl get md mnist -n {NAMESPACE} -o yaml      # status: conditions, stable, history\n"
        f"  kubectl get events -n {NAMESPACE}\n"
        f"  tail -f {root / 'operator.log'}\n"
        "Stop everything:  make cluster-down"
    )


def stop(root: Path) -> None:
    pid_file = root / "operator.pid"
    if pid_file.exists():
        try:
            os.killpg(int(pid_file.read_text()), signal.SIGTERM)
        except ProcessLookupError:
            pass
        pid_file.unlink()
        print("operator stopped", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("run", "stop"):
        raise SystemExit(__doc__)
    directory = Path(sys.argv[2] if len(sys.argv) > 2 else REPO / ".cluster").resolve()
    run(directory) if sys.argv[1] == "run" else stop(directory)
