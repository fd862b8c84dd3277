"""A real node on this machine: kubelet, containerd and runc running pods for real, on a
bridge the test run creates in 198.18.0.0/24 (RFC 2544's benchmarking range: neither
private nor routed anywhere). Pods get no default route, no masquerade, no forwarding:
they reach the bridge's own subnet and nothing else.

It joins a LocalCluster started without kwok (``fake_nodes=False``), so every pod of that
cluster runs here; the kwok cluster stays for the fast bulk of the suite.

Pods reach the API server (an in-cluster operator) at the bridge's address: a forward
listens there on the API server's port and passes bytes to it on loopback, where it
listens alone; its certificate names the bridge's address too (``control_plane_for_node``). Pods are
told so by KUBERNETES_SERVICE_HOST/PORT in their spec (``api_server_env``): nothing
dials the ``kubernetes`` Service's ClusterIP.

    python -m testbed.cluster.realnode up [DIR]     # control plane + real node; the kubeconfig
    python -m testbed.cluster.realnode down [DIR]
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .images import Image, busybox_image, pause_image
from .localcluster import LocalCluster, _alive, _terminate, build_binaries, free_ports

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DIR = REPO / ".cluster-node"
BRIDGE = "mdbr0"
BRIDGE_ADDRESS = "198.18.0.1"
POD_SUBNET = "198.18.0.0/24"
NODE_NAME = "real-node-0"
CNI_BIN = Path("/usr/lib/cni")
NETNS_DIR = Path("/var/run/netns")


def _run(*args: str, check: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=timeout)


def control_plane_for_node(root: Path, crds: tuple[Path, ...] = ()) -> LocalCluster:
    """The control plane a real node joins: no kwok, a certificate for the bridge too."""
    return LocalCluster(root, crds=crds, fake_nodes=False, serving_ips=(BRIDGE_ADDRESS,))


@dataclass
class RealNode:
    cluster: LocalCluster

    @property
    def root(self) -> Path:
        return self.cluster.root / "node"

    @property
    def socket(self) -> Path:
        return self.root / "containerd.sock"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def state(self) -> dict[str, object]:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def _save(self, **entries: object) -> None:
        self.state_file.write_text(json.dumps({**self.state(), **entries}))

    def running(self) -> bool:
        """Whether an earlier ``up`` left every process of the node running."""
        pids = self.state().get("pids") or {}
        assert isinstance(pids, dict)
        return {"containerd", "kubelet", "api-forward"} <= set(pids) and all(
            _alive(int(pid)) for pid in pids.values()
        )

    # ----- start -----

    def up(self, images: tuple[Image, ...] = (), timeout: float = 120.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "logs").mkdir(exist_ok=True)
        self._save(started=time.time())
        self._bridge()
        self._write_cni()
        self._start("containerd", ["containerd", "--config", str(self._write_containerd_config())])
        self._wait(lambda: self.socket.exists(), timeout, "containerd socket")
        for image in (pause_image(), busybox_image(), *images):
            self.import_image(image)
        kubelet_config = self._write_kubelet_config()
        bin_dir = build_binaries()
        self._start(
            "kubelet",
            [
                str(bin_dir / "kubelet"),
                f"--config={kubelet_config}",
                f"--kubeconfig={self.cluster.kubeconfig}",
                f"--root-dir={self.root / 'kubelet'}",
                f"--cert-dir={self.root / 'pki'}",
                f"--hostname-override={NODE_NAME}",
                # kubelet refuses a loopback node IP; the bridge's address is ours alone.
                f"--node-ip={BRIDGE_ADDRESS}",
                "--node-labels=modeldeploy.dev/node=real",
                "--v=1",
            ],
        )
        self._wait(self._node_ready, timeout, f"node {NODE_NAME} Ready")
        port = self.api_server_port
        self._start(
            "api-forward",
            [
                sys.executable,
                "-m",
                "testbed.support.tcp_proxy",
                f"{BRIDGE_ADDRESS}:{port}",
                f"127.0.0.1:{port}",
            ],
        )

    @property
    def api_server_port(self) -> int:
        server = json.loads(self.cluster.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        return int(str(server).rsplit(":", 1)[1])

    def api_server_env(self) -> list[dict[str, str]]:
        """A container's env for reaching the API server from a pod of this node (the
        in-cluster config reads these; set in the spec, they win over the kubelet's)."""
        return [
            {"name": "KUBERNETES_SERVICE_HOST", "value": BRIDGE_ADDRESS},
            {"name": "KUBERNETES_SERVICE_PORT", "value": str(self.api_server_port)},
        ]

    def import_image(self, image: Image) -> str:
        """Import ``image`` into the node's containerd (pods use it with no registry)."""
        self.import_archive(image.archive())
        return image.name

    def ctr(
        self, *args: str, check: bool = True, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        """containerd's own CLI on this node's containerd, in the namespace kubelet uses."""
        return _run("ctr", f"--address={self.socket}", "-n", "k8s.io", *args, check=check, timeout=timeout)

    def import_archive(self, archive: Path) -> None:
        """Import a docker-archive tarball (testbed.cluster.images, dockerfile_images)."""
        self.ctr("images", "import", str(archive))

    def _bridge(self) -> None:
        """The pods' bridge with its address: servers the pods reach listen on it."""
        if _run("ip", "link", "show", BRIDGE, check=False).returncode != 0:
            _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _run("ip", "addr", "replace", f"{BRIDGE_ADDRESS}/24", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")

    def _write_cni(self) -> None:
        cni = self.root / "cni"
        cni.mkdir(exist_ok=True)
        conflist = {
            "cniVersion": "0.4.0",
            "name": "modeldeploy-test",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,  # the bridge holds 198.18.0.1: the host reaches pods
                    "isDefaultGateway": False,  # and pods get no default route
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_SUBNET, "rangeStart": "198.18.0.10"}]],
                        "routes": [],
                        "dataDir": str(self.root / "ipam"),
                    },
                },
                {"type": "loopback"},
            ],
        }
        (cni / "10-modeldeploy.conflist").write_text(json.dumps(conflist, indent=2))

    def _write_containerd_config(self) -> Path:
        path = self.root / "containerd.toml"
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        path.write_text(
            f"""version = 2
root = "{self.root / "containerd"}"
state = "{self.root / "containerd-state"}"
[grpc]
  address = "{self.socket}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{self.root / "opt"}"
[{cri}]
  sandbox_image = "{pause_image().name}"
  # No CAP_SYS_RESOURCE here: a negative oom_score_adj is refused and every sandbox fails.
  restrict_oom_score_adj = true
  enable_selinux = false
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.cni]
  bin_dir = "{CNI_BIN}"
  conf_dir = "{self.root / "cni"}"
"""
        )
        return path

    def _write_kubelet_config(self) -> Path:
        kubelet_port, healthz_port = free_ports(2)
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # Reached only from this machine, on the bridge: local-only authentication.
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            "address": BRIDGE_ADDRESS,
            "port": kubelet_port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": healthz_port,
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "cgroupDriver": "cgroupfs",
            "failSwapOn": False,
            "failCgroupV1": False,
            "cgroupsPerQOS": False,
            "enforceNodeAllocatable": [],
            "serializeImagePulls": False,
            # The images were imported, never pulled: never collect them for disk space.
            "imageGCHighThresholdPercent": 100,
            "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "rotateCertificates": False,
            "registerNode": True,
            "maxPods": 50,
        }
        path = self.root / "kubelet.json"
        path.write_text(json.dumps(config, indent=2))
        return path

    def _start(self, name: str, command: list[str]) -> None:
        log = open(self.root / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=REPO,  # the forward runs as ``python -m testbed.support.tcp_proxy``
        )
        pids = dict(self.state().get("pids") or {})  # type: ignore[call-overload]
        pids[name] = proc.pid
        self._save(pids=pids)
        time.sleep(0.2)  # a process that fails at once (a bad flag): report it with its log
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}; log in {self.root / 'logs'}")

    def _node_ready(self) -> bool:
        out = _run(
            str(build_binaries() / "kubectl"),
            f"--kubeconfig={self.cluster.kubeconfig}",
            "get",
            "node",
            NODE_NAME,
            "-o",
            "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
            check=False,
        )
        return out.stdout.strip() == "True"

    def _wait(self, predicate: object, timeout: float, what: str) -> None:
        assert callable(predicate)
        deadline = time.monotonic() + timeout
        while not predicate():
            for name, pid in (self.state().get("pids") or {}).items():  # type: ignore[attr-defined]
                if not _alive(int(pid)):
                    raise RuntimeError(f"{name} exited while waiting for {what}; log in {self.root / 'logs'}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not reached after {timeout}s; logs in {self.root / 'logs'}")
            time.sleep(0.5)  # polling starting processes; bounded by the deadline

    # ----- stop: leave nothing behind -----

    def down(self) -> None:
        state = self.state()
        pids: dict[str, int] = {k: int(v) for k, v in (state.get("pids") or {}).items()}  # type: ignore[attr-defined]
        if "api-forward" in pids and _alive(pids["api-forward"]):
            _terminate(pids["api-forward"])
        if "kubelet" in pids and _alive(pids["kubelet"]):
            _terminate(pids["kubelet"])
        if self.socket.exists():
            self._kill_containers()
        if "containerd" in pids and _alive(pids["containerd"]):
            _terminate(pids["containerd"])
        self._kill_shims()
        self._unmount_all()
        started = float(state.get("started") or time.time())  # type: ignore[arg-type]
        self._delete_network_namespaces(since=started)
        _run("ip", "link", "delete", BRIDGE, check=False)
        if self.state_file.exists():
            self.state_file.unlink()

    def _kill_containers(self) -> None:
        tasks = self.ctr("tasks", "ls", "-q", check=False).stdout.split()
        for task in tasks:
            self.ctr("tasks", "kill", "-s", "SIGKILL", task, check=False)
        for task in tasks:
            self.ctr("tasks", "delete", "-f", task, check=False)

    def _kill_shims(self) -> None:
        """Shims outlive containerd by design; ours name our socket on their command line."""
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if (
                cmdline
                and b"containerd-shim" in cmdline[0]
                and str(self.socket).encode() in b" ".join(cmdline)
            ):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(proc.name), signal.SIGKILL)

    def _unmount_all(self) -> None:
        """kubelet and containerd mount under their roots (kubelet's root onto itself)."""
        root = str(self.root.resolve())
        for _ in range(5):  # mounts stacked on mounts come off one layer a round
            mounts = [
                line.split()[1]
                for line in Path("/proc/mounts").read_text().splitlines()
                if line.split()[1].startswith(root)
            ]
            if not mounts:
                return
            for mount in sorted(mounts, key=len, reverse=True):
                _run("umount", "-l", mount, check=False)

    @staticmethod
    def _delete_network_namespaces(since: float) -> None:
        """The pods' namespaces containerd made (cni-*) during this run; the kernel deletes
        their veths with them."""
        if not NETNS_DIR.exists():
            return
        for netns in NETNS_DIR.glob("cni-*"):
            try:
                if netns.stat().st_mtime >= since - 1:
                    _run("ip", "netns", "delete", netns.name, check=False)
            except OSError:
                continue


def up(root: Path) -> Path:
    cluster = control_plane_for_node(root)
    kubeconfig = cluster.up()
    RealNode(cluster).up()
    return kubeconfig


def down(root: Path) -> None:
    cluster = control_plane_for_node(root)
    RealNode(cluster).down()
    cluster.down()


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in ("up", "down"):
        print(__doc__)
        return 2
    root = Path(argv[2]) if len(argv) > 2 else DEFAULT_DIR
    if argv[1] == "up":
        start = time.monotonic()
        path = up(root)
        print(f"control plane and real node up in {time.monotonic() - start:.1f}s", file=sys.stderr)
        print(path)
    else:
        down(root)
        print("real node and control plane stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
