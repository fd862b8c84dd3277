"""What the benchmarks measure, whichever phase: requests from the API server's audit log,
when each object is first seen done, the processes' CPU seconds and peak RSS."""

from __future__ import annotations

import ipaddress
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes

from modeldeploy.api.names import GROUP, PLURAL, VERSION
from testbed.bench import rollout_objects
from testbed.bench.contract_floor import deployment_available
from testbed.cluster.localcluster import OPERATOR_USER

WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


class Audit:
    """Reads the API server's audit log from a mark: the operator's requests by verb.

    ``users`` are the operator's identities: one, or one per replica (testbed/bench/scale.py)."""

    def __init__(self, path: Path, users: Iterable[str] = (OPERATOR_USER,)) -> None:
        self.path = path
        self.users = frozenset(users)

    def mark(self) -> int:
        # The API server logs in blocking mode: every answered request is already here.
        return self.path.stat().st_size if self.path.exists() else 0

    def settled(self, quiet: float = 1.0, timeout: float = 30.0) -> int:
        """A mark taken once the operator sent nothing for ``quiet`` seconds (or at the timeout).

        Convergence ends with a status write and then its Event; the idle window starts
        after both, not between them. An operator that never goes quiet still gets its
        idle window at the timeout, and every write in it is counted.
        """
        deadline = time.monotonic() + timeout
        while True:
            mark = self.mark()
            time.sleep(quiet)  # the quiet period itself
            if not self.operator_requests(mark) or time.monotonic() > deadline:
                return self.mark()

    def operator_requests(self, start: int, end: int | None = None) -> list[dict[str, Any]]:
        return [e for e in self.answered(start, end) if e.get("user", {}).get("username") in self.users]

    def namespace_requests(self, namespace: str, start: int, end: int) -> Counter[str]:
        """Every client's requests about ``namespace``'s objects between two marks, counted
        by client, verb and resource: what one phase made the whole cluster ask."""
        return Counter(
            request_key(e)
            for e in self.answered(start, end)
            if (e.get("objectRef") or {}).get("namespace") == namespace
        )

    def answered(self, start: int, end: int | None = None) -> Iterator[dict[str, Any]]:
        """The answered requests between two marks, one at a time: a large run's log holds
        millions, too many to parse into memory at once."""
        if self.mark() < max(start, end or 0):
            # Offsets into a rotated file would count some other stretch of requests.
            raise RuntimeError(f"the audit log {self.path} shrank: was it rotated?")
        stop = self.mark() if end is None else end
        with open(self.path, "rb") as handle:
            handle.seek(start)
            while handle.tell() < stop:
                line = handle.readline()
                if not line.endswith(b"\n"):
                    break  # a line still being written: past every mark taken so far
                event = json.loads(line)
                if event.get("stage") == "ResponseComplete":
                    yield event


def request_key(event: dict[str, Any]) -> str:
    """ "client verb resource[/subresource]"; the controller-manager's controllers by name."""
    user = str(event.get("user", {}).get("username", "?")).removeprefix("system:serviceaccount:kube-system:")
    ref = event.get("objectRef") or {}
    resource = ref.get("resource", "?") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    return f"{user} {event.get('verb')} {resource}"


def matching(
    events: list[dict[str, Any]], verb: str, resource: str, subresource: str | None = None
) -> list[dict[str, Any]]:
    """The audit events of one kind of request. A pod's model gate is a status patch too:
    told apart from a ModelDeployment's status write by resource."""
    return [
        e
        for e in events
        if e["verb"] == verb
        and (e.get("objectRef") or {}).get("resource") == resource
        and (e.get("objectRef") or {}).get("subresource") == subresource
    ]


def cluster_requests(counts: Counter[str], n: int) -> dict[str, Any]:
    """A phase's requests from every client, per object, in total and by client/verb/resource."""
    return {
        "per_object": round(sum(counts.values()) / n, 2),
        "per_object_by_request": {k: round(v / n, 2) for k, v in counts.most_common()},
    }


@dataclass
class ReadyWatch:
    """Records when each object of a namespace is first seen done (by a predicate on its body)."""

    api: kubernetes.client.ApiClient
    namespace: str
    kind: str  # "md", "deployment" or "rollout" (Argo Rollouts', the peer's)
    expected: int
    done_at: dict[str, float] = field(default_factory=dict)
    finished: threading.Event = field(default_factory=threading.Event)

    def _done(self, obj: dict[str, Any]) -> bool:
        if self.kind == "deployment":
            return deployment_available(obj)
        if self.kind == "rollout":
            return rollout_objects.rollout_healthy(obj)
        status = obj.get("status") or {}
        return (
            status.get("phase") == "Ready"
            and status.get("observedGeneration") == obj["metadata"]["generation"]
        )

    def run(self) -> None:
        if self.kind == "deployment":
            lister: Any = kubernetes.client.AppsV1Api(self.api).list_namespaced_deployment
            args: tuple[Any, ...] = (self.namespace,)
        else:
            lister = kubernetes.client.CustomObjectsApi(self.api).list_namespaced_custom_object
            group, version, plural = (
                rollout_objects.RESOURCE if self.kind == "rollout" else (GROUP, VERSION, PLURAL)
            )
            args = (group, version, self.namespace, plural)
        while not self.finished.is_set():
            watch = kubernetes.watch.Watch()
            for event in watch.stream(lister, *args, timeout_seconds=30, _preload_content=False):
                obj = event["raw_object"]
                name = obj["metadata"]["name"]
                if name not in self.done_at and self._done(obj):
                    self.done_at[name] = time.monotonic()
                    if len(self.done_at) >= self.expected:
                        self.finished.set()
                        watch.stop()
                        break

    def start(self) -> ReadyWatch:
        threading.Thread(target=self.run, daemon=True).start()
        return self


def per_object_by_verb(requests: list[dict[str, Any]], n: int) -> dict[str, float]:
    """One client's requests per object, by verb."""
    by_verb = Counter(e["verb"] for e in requests)
    return {verb: round(count / n, 2) for verb, count in sorted(by_verb.items())}


def reaction_summary(m: int, by_step: dict[int, list[float]]) -> dict[str, Any]:
    """The canary step reaction of ``m`` rollouts from each step's delays: p50, p99, max, and
    every delay kept by the step it reached, to see where a tail comes from."""
    delays = [d for step in by_step.values() for d in step]
    return {
        "m": m,
        "transitions": len(delays),
        "p50_s": percentile(delays, 0.5),
        "p99_s": percentile(delays, 0.99),
        "max_s": max(delays) if delays else float("nan"),
        "delays_ms_by_step": {str(k): sorted(round(d * 1000) for d in v) for k, v in sorted(by_step.items())},
    }


def proc_usage(pid: int) -> tuple[float, float]:
    """(peak RSS MiB, CPU seconds) of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    hwm_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return hwm_kb / 1024, (int(fields[11]) + int(fields[12])) / ticks


def listening_addresses(pid: int) -> list[str]:
    """ "address:port" of every TCP socket the process listens on, from /proc: its socket
    inodes (its fds) matched against the kernel's tables in LISTEN state."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = []
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == LISTEN and inode in inodes:
                address, port = local.split(":")
                found.append(f"{kernel_address(address, width)}:{int(port, 16)}")
    return sorted(found)


# /proc/net/tcp's state of a listening socket.
LISTEN = "0A"


def kernel_address(hex_address: str, width: int) -> str:
    """An address as /proc/net/tcp{,6} writes it (32-bit words in host order, little-endian
    here), in the usual notation."""
    raw = b"".join(bytes.fromhex(hex_address[i : i + 8])[::-1] for i in range(0, width, 8))
    return str(ipaddress.ip_address(raw))


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named process (this one as "bench")."""
    used = {name: proc_usage(pid)[1] for name, pid in pids.items() if Path(f"/proc/{pid}").exists()}
    times = os.times()
    used["bench"] = times.user + times.system
    return used


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before.get(name, 0.0), 1) for name in after}


def settle(pids: dict[str, int], busy: float = 0.25, timeout: float = 60.0) -> None:
    """Wait until the processes together use under ``busy`` cores over a second.

    Both phases share two cores with the control plane: without this, start-up work
    (CRD OpenAPI publishing, informer syncs, the operator's imports) or the previous
    phase's tail lands inside a timed phase and moves the ratio by tens of percent.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = sum(cpu_seconds(pids).values())
        time.sleep(1.0)  # the measuring window itself
        if sum(cpu_seconds(pids).values()) - before < busy:
            return


def timings(watch: ReadyWatch, start: float) -> dict[str, float]:
    """How long from ``start`` until the last object was done, and the median and p99 object."""
    durations = [t - start for t in watch.done_at.values()]
    return {
        "total_s": max(durations),
        "p50_s": percentile(durations, 0.5),
        "p99_s": percentile(durations, 0.99),
    }
