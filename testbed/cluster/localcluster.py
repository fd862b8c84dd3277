"""A real, local Kubernetes control plane for tests and the demo, on loopback only.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler built from Go
modules (hack/controlplane/build.sh), with kwok simulating a node and the
lifecycle of its pods. Every server binds 127.0.0.1; pod and node IPs are in
127.0.0.0/8 so nothing ever dials a private-range address.

    python testbed/cluster/localcluster.py up [DIR]    # prints the kubeconfig path
    python testbed/cluster/localcluster.py down [DIR]
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import yaml

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "controlplane" / "build.sh"
DEFAULT_DIR = REPO / ".cluster"
MODELDEPLOYMENT_CRD = REPO / "crds" / "serving.modeldeploy.dev_modeldeployments.yaml"
ADMIN_TOKEN_USER = "admin"
OPERATOR_USER = "modeldeploy-operator"
STANDBY_USER = "modeldeploy-operator-2"  # a second replica's identity (leader election tests)


def replica_user(index: int) -> str:
    """The API identity of operator replica ``index``: 0 is the operator's, 1 the standby's,
    and the next ones (``LocalCluster.replica_identities``) are numbered on from there."""
    return OPERATOR_USER if index == 0 else f"{OPERATOR_USER}-{index + 1}"


# Metadata of every completed request but node leases (kwok's heartbeats), for counting by user.
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
- level: None
  resources: [{group: coordination.k8s.io, resources: [leases]}]
- level: Metadata
"""
AUDIT_LOG_MAX_MB = 1 << 20  # 1 TiB: the audit log of a run is never rotated


# Locks on the pod ranges this process's clusters use, held until it exits.
_RESERVED_RANGES: list[IO[str]] = []
RANGE_LOCKS = Path(tempfile.gettempdir()) / "modeldeploy-pod-ranges"


def random_pod_cidr() -> str:
    """Where kwok hands out pod IPs: loopback, bindable by the model servers standing in for
    the pods. A /16 of its own per cluster: two clusters on one machine (test workers, or
    engineers' runs side by side) would otherwise give pods the same addresses, and one's
    model server found the other's port taken. Each cluster takes a range by a lock file
    its process holds; MODELDEPLOY_TEST_POD_CIDR picks one by hand."""
    pinned = os.environ.get("MODELDEPLOY_TEST_POD_CIDR")
    if pinned:
        return pinned
    octets = list(range(10, 251))
    random.shuffle(octets)
    for octet in octets:
        if _reserve_range(octet):
            return f"127.{octet}.0.1/16"
    raise RuntimeError(f"every pod range 127.10-250.x.x is held by a cluster on this machine ({RANGE_LOCKS})")


def _reserve_range(octet: int) -> bool:
    RANGE_LOCKS.mkdir(exist_ok=True)
    lock = open(RANGE_LOCKS / f"127.{octet}.lock", "w")  # noqa: SIM115 - held until exit
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return False
    _RESERVED_RANGES.append(lock)
    return True


NODE_IP = "127.0.0.2"
NODE_NAME = "kwok-node-0"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


def build_binaries() -> Path:
    """Build (or reuse) the cached binaries; their directory."""
    out = subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True).stdout
    return Path(out.strip().splitlines()[-1])


STAGES_DIR = Path(__file__).resolve().parent / "stages"
# kwok's own stages, read from its module at start so they match the kwok built.
KWOK_STAGE_FILES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/general/pod-create.yaml",
    "pod/general/pod-init-container-running.yaml",
    "pod/general/pod-init-container-completed.yaml",
    "pod/general/pod-ready.yaml",
    "pod/general/pod-complete.yaml",
    "pod/general/pod-delete.yaml",
)


def versions(path: Path = REPO / "hack" / "controlplane" / "versions.env") -> dict[str, str]:
    """The KEY=value lines of a versions.env: the control plane's, or another build's."""
    env = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key.strip()] = value.strip()
    return env


def go_module_dir(module: str, version: str) -> Path:
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        cwd="/",
    ).stdout
    return Path(json.loads(out)["Dir"])


def write_kwok_config(path: Path) -> None:
    kwok_dir = go_module_dir("sigs.k8s.io/kwok", versions()["KWOK_VERSION"])
    # kwok's general stages wait 1s plus up to 5s of jitter each; 200-400ms keeps
    # their order and makes a pod's life (create, init, ready) take about a second.
    docs = [
        re.sub(
            r"jitterDurationMilliseconds: \d+",
            "jitterDurationMilliseconds: 400",
            (kwok_dir / "kustomize" / "stage" / f).read_text(),
        ).replace("durationMilliseconds: 1000", "durationMilliseconds: 200")
        for f in KWOK_STAGE_FILES
    ]
    docs = [_honour_readiness_gates(d) for d in docs]
    docs += [p.read_text() for p in sorted(STAGES_DIR.glob("*.yaml"))]
    path.write_text("\n---\n".join(d.strip() for d in docs) + "\n")


# kwok's stages ignore readinessGates: pod-create sets every gate's condition True, and
# pod-ready makes every pod Ready. A kubelet never sets a gate's condition (the gate's owner
# does) and keeps the pod not Ready until all are True; stages/readiness-gates.yaml then
# makes it Ready. Each rewrite fails loudly if a kwok upgrade changed the text it expects.
KWOK_GATES_SET_TRUE = re.compile(r"\n *\{\{ range \.spec\.readinessGates \}\}.*?\{\{ end \}\}", re.DOTALL)
KWOK_READY = """        status: "True"
        type: Ready
"""
GATED_READY = """        status: {{ if .spec.readinessGates }}"False"{{ else }}"True"{{ end }}
        type: Ready
"""


def _honour_readiness_gates(stage: str) -> str:
    if "name: pod-create\n" in stage:
        stage, count = KWOK_GATES_SET_TRUE.subn("", stage)
        if count != 1:
            raise ValueError("kwok's pod-create stage no longer sets readinessGates as expected")
    elif "name: pod-ready\n" in stage:
        if KWOK_READY not in stage:
            raise ValueError("kwok's pod-ready stage no longer sets Ready as expected")
        stage = stage.replace(KWOK_READY, GATED_READY)
    return stage


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports. Each socket stays bound until all are chosen:
    a port freed by one call is often the next call's answer, and two parts given
    the same port fail in ways that look like something else (a REST call
    answered by a gRPC server)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(pki: Path, serving_ips: tuple[str, ...] = ()) -> None:
    """A CA, the API server's serving cert (127.0.0.1 and ``serving_ips``) and the
    service-account key pair."""
    pki.mkdir(parents=True, exist_ok=True)
    if (pki / "apiserver.crt").exists():
        return
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "3650",
        "-subj",
        "/CN=modeldeploy-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        cwd=pki,
    )
    (pki / "san.cnf").write_text(
        "[req]\ndistinguished_name=dn\n[dn]\n[ext]\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc"
        + "".join(f",IP:{ip}" for ip in serving_ips)
        + "\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=kube-apiserver",
        "-keyout",
        "apiserver.key",
        "-out",
        "apiserver.csr",
        cwd=pki,
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        "apiserver.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "3650",
        "-extfile",
        "san.cnf",
        "-extensions",
        "ext",
        "-out",
        "apiserver.crt",
        cwd=pki,
    )
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def write_kubeconfig(path: Path, server: str, ca: Path, token: str, user: str = ADMIN_TOKEN_USER) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }
    path.write_text(json.dumps(config, indent=2))


@dataclass
class LocalCluster:
    root: Path
    # Installed before the controller-manager starts. Its garbage collector discovers new
    # resource types only every 30s; until then every child owned by a custom resource is
    # a "virtual" node it checks with a GET on the owner (hundreds in the benchmark).
    crds: tuple[Path, ...] = ()
    # kwok and its fake node; without them pods wait for a real node (testbed/cluster/realnode.py).
    fake_nodes: bool = True
    # More addresses the API server's certificate names: the real node's pods reach it on
    # the bridge (through a forward, see realnode), never on loopback.
    serving_ips: tuple[str, ...] = ()
    pod_cidr: str = field(default_factory=random_pod_cidr)  # the same across kwok's restarts
    # Operator identities with a token each (at least the operator's and the standby's), so
    # the audit log tells every replica's requests apart (the scale benchmark runs several).
    replica_identities: int = 2
    # Other controllers' identities, each with a token and a kubeconfig (``peer_kubeconfig``):
    # the benchmark's peer, Argo Rollouts, is counted apart from everything else.
    peer_users: tuple[str, ...] = ()
    # Pods the fake node admits: the scale benchmark's floor alone runs ten thousand.
    max_pods: int = 5000

    @property
    def components(self) -> tuple[str, ...]:
        return COMPONENTS if self.fake_nodes else tuple(c for c in COMPONENTS if c != "kwok")

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def standby_kubeconfig(self) -> Path:
        """A kubeconfig for a second operator replica (user modeldeploy-operator-2)."""
        return self.root / "standby-kubeconfig"

    @property
    def operator_kubeconfig(self) -> Path:
        """A kubeconfig for the operator's own identity (user modeldeploy-operator)."""
        return self.root / "operator-kubeconfig"

    def replica_kubeconfig(self, index: int) -> Path:
        """The kubeconfig of operator replica ``index`` (user ``replica_user(index)``)."""
        if not 0 <= index < max(2, self.replica_identities):
            raise ValueError(f"replica {index}: the cluster has {self.replica_identities} identities")
        if index < 2:
            return (self.operator_kubeconfig, self.standby_kubeconfig)[index]
        return self.root / f"operator-{index + 1}-kubeconfig"

    def peer_kubeconfig(self, user: str) -> Path:
        """The kubeconfig of ``user``, one of ``peer_users``."""
        if user not in self.peer_users:
            raise ValueError(f"{user}: not one of the cluster's peer users {self.peer_users}")
        return self.root / f"{user}-kubeconfig"

    @property
    def audit_log(self) -> Path:
        """The API server's audit log: one JSON line per request (metadata only)."""
        return self.root / "audit.log"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def state(self) -> dict[str, object]:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def pids(self) -> dict[str, int]:
        """The started components' process ids, by component name."""
        pids = self.state().get("pids", {})
        assert isinstance(pids, dict)
        return {name: int(pid) for name, pid in pids.items()}

    def running(self) -> bool:
        pids = self.pids()
        return bool(pids) and all(_alive(pid) for pid in pids.values())

    def up(self, timeout: float = 120.0) -> Path:
        if self.running():
            return self.kubeconfig
        self.down()
        bin_dir = build_binaries()
        self.root.mkdir(parents=True, exist_ok=True)
        pki = self.root / "pki"
        make_pki(pki, self.serving_ips)
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        token = os.urandom(16).hex()
        replica_tokens = [os.urandom(16).hex() for _ in range(max(2, self.replica_identities))]
        peer_tokens = {user: os.urandom(16).hex() for user in self.peer_users}
        identities = [(replica_user(i), secret) for i, secret in enumerate(replica_tokens)]
        # The operator gets an identity of its own, so the audit log can tell its requests apart.
        (pki / "tokens.csv").write_text(
            f'{token},{ADMIN_TOKEN_USER},admin-uid,"system:masters"\n'
            + "".join(
                f'{secret},{user},{user}-uid,"system:masters"\n'
                for user, secret in [*identities, *peer_tokens.items()]
            )
        )
        (self.root / "audit-policy.yaml").write_text(AUDIT_POLICY)
        etcd_port, etcd_peer, api_port = free_ports(3)
        server = f"https://127.0.0.1:{api_port}"
        write_kubeconfig(self.kubeconfig, server, pki / "ca.crt", token)
        for i, secret in enumerate(replica_tokens):
            write_kubeconfig(self.replica_kubeconfig(i), server, pki / "ca.crt", secret, user=replica_user(i))
        for user, secret in peer_tokens.items():
            write_kubeconfig(self.peer_kubeconfig(user), server, pki / "ca.crt", secret, user=user)
        etcd_dir = self.root / "etcd"
        if self.fake_nodes:
            write_kwok_config(self.root / "kwok.yaml")
        commands = {
            "etcd": [
                str(bin_dir / "etcd"),
                "--data-dir",
                str(etcd_dir),
                "--name",
                "default",
                "--listen-client-urls",
                f"http://127.0.0.1:{etcd_port}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{etcd_port}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{etcd_peer}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{etcd_peer}",
                "--initial-cluster",
                f"default=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync",
                "--quota-backend-bytes",
                str(4 * 1024**3),
            ],
            "kube-apiserver": [
                str(bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--token-auth-file={pki / 'tokens.csv'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",  # allocated, never dialled
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",  # no kubernetes Service endpoint pointing anywhere
                # Reach kubelets (logs, exec) at the node's IP: by its name would be a DNS lookup
                # leaving the machine.
                "--kubelet-preferred-address-types=InternalIP",
                "--max-requests-inflight=2000",
                "--max-mutating-requests-inflight=1000",
                "--profiling=" + ("true" if os.environ.get("MODELDEPLOY_APISERVER_PROFILING") else "false"),
                "--v=1",
                f"--audit-policy-file={self.root / 'audit-policy.yaml'}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                # Never rotated: the benchmark reads it by byte offsets. (Kubernetes 1.34 takes 0
                # for its default size, which a large benchmark round passes.)
                f"--audit-log-maxsize={AUDIT_LOG_MAX_MB}",
                "--audit-log-mode=blocking",  # logged before the response: counts need no waiting
            ],
            "kube-controller-manager": [
                str(bin_dir / "kube-controller-manager"),
                f"--kubeconfig={self.kubeconfig}",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                "--leader-elect=false",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                "--use-service-account-credentials=true",
                # No endpoint controllers: they would publish pod IPs, which here are loopback
                # addresses the API server refuses in Endpoints, so they retry and post
                # warnings forever; nothing in this cluster reads Endpoints (nothing may dial
                # a ClusterIP), so they are only load.
                "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route,"
                "-endpoint,-endpointslice,-endpointslicemirroring",
                "--concurrent-deployment-syncs=20",
                "--concurrent-replicaset-syncs=20",
                "--concurrent-gc-syncs=40",
                "--kube-api-qps=500",
                "--kube-api-burst=1000",
                "--v=1",
            ],
            "kube-scheduler": [
                str(bin_dir / "kube-scheduler"),
                f"--kubeconfig={self.kubeconfig}",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                "--leader-elect=false",
                "--kube-api-qps=500",
                "--kube-api-burst=1000",
                "--v=1",
            ],
            "kwok": [
                str(bin_dir / "kwok"),
                f"--kubeconfig={self.kubeconfig}",
                f"--config={self.root / 'kwok.yaml'}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                f"--cidr={self.pod_cidr}",
                f"--node-ip={NODE_IP}",
                "--node-lease-duration-seconds=40",
                "--server-address=127.0.0.1:0",
            ],
        }
        # The commands are kept with the pids, so a fault test can kill one component and start
        # it again exactly as it was (kill / start_component).
        self._write_state({"pids": {}, "server": server, "commands": commands})
        try:
            for name in self.components:
                self._launch(name)
                if name == "kube-apiserver":
                    self._wait_ready(timeout)
                    if self.crds:
                        install_crds(bin_dir / "kubectl", self.kubeconfig, self.crds, timeout)
            if self.fake_nodes:
                self._create_node(bin_dir)
        except BaseException:
            self.down()
            raise
        return self.kubeconfig

    def _write_state(self, state: dict[str, object]) -> None:
        self.state_file.write_text(json.dumps(state))

    def _launch(self, name: str) -> None:
        state = self.state()
        commands = state["commands"]
        pids = state["pids"]
        assert isinstance(commands, dict)
        assert isinstance(pids, dict)
        log = open(self.root / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        proc = subprocess.Popen(
            commands[name],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        pids[name] = proc.pid
        self._write_state(state)

    def kill(self, name: str) -> None:
        """SIGKILL one component (no shutdown of any kind), as a crash would."""
        pid = self.pids()[name]
        os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(pid):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} (pid {pid}) still alive after SIGKILL")
            time.sleep(0.05)  # polling a dying process; bounded by the deadline

    def start_component(self, name: str, timeout: float = 120.0) -> None:
        """Start a killed component again with its original command (same ports, same data)."""
        self._launch(name)
        if name == "kube-apiserver":
            self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        config = json.loads(self.kubeconfig.read_text())
        server = config["clusters"][0]["cluster"]["server"]
        token = config["users"][0]["user"]["token"]
        ctx = ssl.create_default_context(cafile=str(self.root / "pki" / "ca.crt"))
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            request = urllib.request.Request(f"{server}/readyz", headers={"Authorization": f"Bearer {token}"})
            try:
                with urllib.request.urlopen(request, context=ctx, timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError as exc:
                last = str(exc)
            time.sleep(0.5)  # polling a starting process; bounded by the deadline
        raise TimeoutError(f"kube-apiserver not ready after {timeout}s: {last}; logs in {self.root / 'logs'}")

    def _create_node(self, bin_dir: Path) -> None:
        """One fake node kwok manages: no taint, room for thousands of pods, a loopback IP."""
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE_NAME,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": NODE_NAME,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            "status": {
                "allocatable": {"cpu": "1000", "memory": "4Ti", "pods": str(self.max_pods)},
                "capacity": {"cpu": "1000", "memory": "4Ti", "pods": str(self.max_pods)},
            },
        }
        subprocess.run(
            [str(bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", "apply", "-f", "-"],
            input=json.dumps(node),
            text=True,
            check=True,
            capture_output=True,
        )

    def down(self) -> None:
        pids = self.pids()
        for name in reversed(COMPONENTS):
            pid = pids.get(name)
            if pid is not None and _alive(pid):
                _terminate(pid)
        if self.state_file.exists():
            self.state_file.unlink()
        # Each start is a fresh cluster: no state leaks between runs.
        etcd_dir = self.root / "etcd"
        if etcd_dir.exists():
            subprocess.run(["rm", "-rf", str(etcd_dir)], check=True)


def install_crds(kubectl: Path, kubeconfig: Path, crds: tuple[Path, ...], timeout: float) -> None:
    """Apply CRDs (files or folders of YAML) and wait until every one is Established."""
    base = [str(kubectl), f"--kubeconfig={kubeconfig}"]
    files = [arg for crd in crds for arg in ("-f", str(crd))]
    subprocess.run([*base, "apply", "--server-side", *files], check=True, capture_output=True)
    # "kubectl wait" fails on a CRD that has no conditions yet: poll instead.
    names = crd_names(crds)
    deadline = time.monotonic() + timeout
    while True:
        listed = json.loads(
            subprocess.run(
                [*base, "get", "crd", *names, "-o", "json"], check=True, capture_output=True, text=True
            ).stdout
        )
        items = listed.get("items", [listed])  # one name gives the object, not a list
        if len(items) == len(names) and all(_established(crd) for crd in items):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"CRDs {names} not established after {timeout}s")
        time.sleep(0.1)  # polling the API server; bounded by the deadline


def crd_names(crds: tuple[Path, ...]) -> list[str]:
    """metadata.name of every CRD in ``crds`` (files or folders of YAML)."""
    files = [f for crd in crds for f in (sorted(crd.glob("*.yaml")) if crd.is_dir() else [crd])]
    return [
        doc["metadata"]["name"]
        for f in files
        for doc in yaml.safe_load_all(f.read_text())
        if doc and doc.get("kind") == "CustomResourceDefinition"
    ]


def _established(crd: dict[str, object]) -> bool:
    status = crd.get("status") or {}
    assert isinstance(status, dict)
    conditions = status.get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:
        return True


def _terminate(pid: int, grace: float = 10.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in ("up", "down", "kubeconfig"):
        print(__doc__)
        return 2
    cluster = LocalCluster(Path(argv[2]) if len(argv) > 2 else DEFAULT_DIR)
    if argv[1] == "up":
        start = time.monotonic()
        path = cluster.up()
        print(f"control plane up in {time.monotonic() - start:.1f}s", file=sys.stderr)
        print(path)
    elif argv[1] == "down":
        cluster.down()
        print("control plane stopped", file=sys.stderr)
    else:
        print(cluster.kubeconfig)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
