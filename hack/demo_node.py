"""`make demo-node`: the sample on pods that really run, ending with a real prediction.

A control plane with a real node (kubelet, containerd, runc; testbed/cluster/realnode.py),
the fetcher, operator and serving images built from their Dockerfiles with buildah, an S3
server on the pods' bridge holding two versions of a real SavedModel, and the operator
installed with `kubectl apply -k manifests/`, running as a pod. Then the sample
(manifests/samples/mnist.yaml, pointed at that bucket) rolls out, and a new version goes
through its canary steps on the real pods' metrics.

python hack/demo_node.py run [DIR]    # everything above; leaves it running
python hack/demo_node.py stop [DIR]   # the S3 server (`make node-down` stops the rest)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

import kubernetes
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from demo import NAMESPACE, SAMPLE, kubectl, set_version, watch_until  # noqa: E402

from testbed.cluster.dockerfile_images import DOCKERFILES, build  # noqa: E402
from testbed.cluster.localcluster import MODELDEPLOYMENT_CRD, install_crds  # noqa: E402
from testbed.cluster.operator_manifests import OPERATOR_NAMESPACE, operator_manifests  # noqa: E402
from testbed.cluster.realnode import BRIDGE_ADDRESS, RealNode, control_plane_for_node  # noqa: E402
from testbed.modelserver.export import HALF_PLUS_THREE, HALF_PLUS_TWO, ensure_exported  # noqa: E402
from testbed.modelserver.traffic import TrafficDriver  # noqa: E402
from testbed.support.kube import kubectl_path  # noqa: E402
from testbed.support.s3server import CREDENTIALS, s3_client, start_moto, upload_dir  # noqa: E402

BUCKET = "models"


def node_sample(image: str) -> str:
    """The sample, read from its S3 bucket with a Secret's credentials, served by the test
    serving image, with its canary timings shortened so the demo takes a minute."""
    body = yaml.safe_load(SAMPLE.read_text())
    spec = body["spec"]
    spec["model"].update({"storageUri": f"s3://{BUCKET}/mnist", "version": 8, "storageSecretName": "s3"})
    spec["runtime"] = {"image": image}
    spec["replicas"] = 1
    spec["rollout"]["steps"] = [{"weight": 50, "pause": "5s"}]
    spec["rollout"]["analysis"].update({"interval": "2s", "minRequests": 10})
    return yaml.safe_dump(body)


def start_s3(root: Path) -> str:
    """moto on the bridge: mnist version 8 (y = 0.5x + 2, in folder 00000008) and 9 (+3)."""
    pid_file, endpoint_file = root / "s3.pid", root / "s3.endpoint"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid_file.read_text()), 0)
            return endpoint_file.read_text()
    proc, endpoint = start_moto({}, host=BRIDGE_ADDRESS)
    pid_file.write_text(str(proc.pid))
    endpoint_file.write_text(endpoint)
    client = s3_client(endpoint)
    client.create_bucket(Bucket=BUCKET)
    models = ensure_exported()
    upload_dir(client, BUCKET, "mnist/00000008", models / HALF_PLUS_TWO)
    upload_dir(client, BUCKET, "mnist/9", models / HALF_PLUS_THREE)
    return endpoint


def install_operator(root: Path, node: RealNode) -> None:
    """manifests/ as `kubectl apply -k` renders them, but for the API server's address on the
    bridge: nothing here may dial the kubernetes Service's ClusterIP."""
    kubectl(root, "apply", "-f", "-", stdin=operator_manifests(kubectl_path(), node.api_server_env()))
    kubectl(root, "-n", OPERATOR_NAMESPACE, "rollout", "status", "deployment/modeldeploy", "--timeout=180s")


def predict_on_pod(root: Path, version: int, value: float) -> str:
    """One prediction straight to a serving pod's IP on the bridge: TensorFlow's answer."""
    api = kubernetes.config.new_client_from_config(config_file=str(root / "kubeconfig"))
    try:
        answered, answer = TrafficDriver(api, NAMESPACE, "mnist", "mnist").predict(value)
    finally:
        api.close()
    assert answered == version, f"version {answered} answered, not {version}"
    return f"predict x={value}: version {answered} answers {answer}"


def run(root: Path) -> None:
    started = time.monotonic()
    print("==> control plane and a real node (kubelet, containerd, runc; pods on 198.18.0.0/24)", flush=True)
    cluster = control_plane_for_node(root, crds=(MODELDEPLOYMENT_CRD,))
    cluster.up()
    node = RealNode(cluster)
    if not node.running():
        node.up()
    (root / "bin").mkdir(exist_ok=True)
    link = root / "bin" / "kubectl"
    if not link.exists():
        link.symlink_to(kubectl_path())
    install_crds(link, cluster.kubeconfig, (MODELDEPLOYMENT_CRD,), 60)
    print("==> images from the Dockerfiles, built by buildah (cached by content), imported", flush=True)
    for which in ("fetcher", "operator", "modelserver"):
        node.import_archive(build(which))
    print(f"==> an S3 server on the bridge ({start_s3(root)}) holding mnist versions 8 and 9", flush=True)
    endpoint = (root / "s3.endpoint").read_text()
    print(
        "==> manifests/ applied as kubectl apply -k renders them: the operator runs as a pod on the node",
        flush=True,
    )
    install_operator(root, node)
    kubectl(
        root, "apply", "-f", "-", stdin=f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n"
    )
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s3", "namespace": NAMESPACE},
        "stringData": {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint},
    }
    kubectl(root, "apply", "-f", "-", stdin=json.dumps(secret))
    kubectl(root, "delete", "md", "mnist", "-n", NAMESPACE, "--ignore-not-found", "--wait=true")
    image = DOCKERFILES["modelserver"][1]
    print(f"==> the sample, from s3://{BUCKET}/mnist with the Secret's credentials, version 8", flush=True)
    kubectl(root, "apply", "-n", NAMESPACE, "-f", "-", stdin=node_sample(image))
    watch_until(root, "Ready", 8, timeout=300)
    predictions = [f"version 8 rolled out:  {predict_on_pod(root, 8, 1.0)}"]
    print(
        "==> spec.model.version 8 -> 9: a canary at 50% on the real pods' metrics, then promoted", flush=True
    )
    api = kubernetes.config.new_client_from_config(config_file=str(root / "kubeconfig"))
    traffic = TrafficDriver(api, NAMESPACE, "mnist", "mnist", rps=20).start()
    try:
        set_version(root, 9)
        watch_until(root, "Ready", 9, timeout=300)
    finally:
        traffic.stop()
        api.close()
    predictions.append(f"version 9 promoted:    {predict_on_pod(root, 9, 1.0)}")
    print(kubectl(root, "get", "md,deploy,pods", "-n", NAMESPACE, "-o", "wide"))
    print(
        f"Look around:\n  export KUBECONFIG={root / 'kubeconfig'} PATH={root / 'bin'}:$PATH\n"
        f"  kubectl get md mnist -n {NAMESPACE} -o yaml\n"
        "  kubectl logs -n modeldeploy-system deploy/modeldeploy\n"
        "Stop everything:  make node-down"
    )
    print(f"==> predictions from the real pods, computed by TensorFlow ({time.monotonic() - started:.0f}s):")
    print("\n".join(f"  {line}" for line in predictions))


def stop(root: Path) -> None:
    pid_file = root / "s3.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
        pid_file.unlink()
        print("S3 server stopped", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("run", "stop"):
        raise SystemExit(__doc__)
    directory = Path(sys.argv[2] if len(sys.argv) > 2 else REPO / ".cluster-node").resolve()
    run(directory) if sys.argv[1] == "run" else stop(directory)
