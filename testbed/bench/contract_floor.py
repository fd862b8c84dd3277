"""The contract floor: the requests a ModelDeployment's first rollout makes the cluster
serve, sent by a client that decides nothing.

Per object it sends what the operator sends (the audit log's counts: 1 create, 6 patches,
1 Event): the user's create; the three children applied with the ModelDeployment as their
owner and the model gate in the pod's readinessGates; a status write once they are
applied; the model gate opened on the pod as soon as its containers are ready; a status
write and an Event once the Deployment is Available. It watches what such a client must:
ModelDeployments, Deployments and pods of its namespace, with the operator's own client.

What it leaves out is what the operator adds by itself: its decisions, its questions to TF
Serving before it opens a gate, and the model servers. So the operator phase over this one
is the price of the operator's own work, and this one over the children-only floor is the
price of the requests.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from modeldeploy.api.names import FIELD_MANAGER, LABEL_NAME
from modeldeploy.api.spec import ModelDeployment
from modeldeploy.children.deployment import build_config_map, build_deployment
from modeldeploy.children.routing import build_service
from modeldeploy.control.kinds import BY_KIND
from modeldeploy.control.observe import awaits_gate
from modeldeploy.control.writes import Writes
from modeldeploy.kube.client import Kube
from modeldeploy.kube.kinds import Kind

# What it must watch to know when to send each request (with every part).
WATCHES = ("ModelDeployment", "Deployment", "Pod")
# What a first rollout sends beyond the user's create and the three owned children, each of
# which the price list (testbed/bench/contract_price.py) leaves out on its own: the two status
# writes, the model gate (the pods' readinessGates and the patch that opens each), the Event.
PARTS = ("status", "gate", "event")
# Long enough for a whole phase at N=1000 on a slow machine; a watch the server ends is resumed.
WATCH_SECONDS = 600


def status(phase: str, ready: int) -> dict[str, Any]:
    """A status the size of the operator's for a one-replica Immediate rollout."""
    now = "2026-01-01T00:00:00Z"
    conditions = [
        {
            "type": kind,
            "status": value,
            "reason": reason,
            "message": f"version 1: {ready}/1 pods serving the model",
            "lastTransitionTime": now,
            "observedGeneration": 1,
        }
        for kind, value, reason in (
            ("Ready", "True" if ready else "False", "Serving" if ready else "Waiting"),
            ("Progressing", "False" if ready else "True", "Complete" if ready else "Rolling"),
            ("ModelLoaded", "True" if ready else "False", "Loaded" if ready else "Loading"),
            ("Degraded", "False", "Healthy"),
        )
    ]
    return {
        "observedGeneration": 1,
        "phase": phase,
        "stable": {"version": 1, "replicas": 1, "readyReplicas": ready},
        "conditions": conditions,
    }


def deployment_available(deployment: dict[str, Any]) -> bool:
    """Every wanted replica available, for the Deployment's current generation."""
    status = deployment.get("status") or {}
    return bool(
        status.get("availableReplicas", 0) >= deployment["spec"].get("replicas", 1)
        and status.get("observedGeneration", 0) >= deployment["metadata"]["generation"]
    )


class ContractClient:
    """Watches one namespace and answers each change with the operator's requests, once each;
    of the optional ones only those of ``parts`` (all of them by default)."""

    def __init__(
        self, kube: Kube, namespace: str, replicas: int, workers: int, parts: tuple[str, ...] = PARTS
    ) -> None:
        unknown = set(parts) - set(PARTS)
        if unknown:
            raise ValueError(f"unknown parts {sorted(unknown)}; known: {PARTS}")
        self.kube = kube
        self.writes = Writes(kube)
        self.namespace = namespace
        self.replicas = replicas
        self.parts = frozenset(parts)
        self.pool = ThreadPoolExecutor(max_workers=workers)
        self.stopping = threading.Event()
        self.errors: list[BaseException] = []
        self._done: set[tuple[str, str]] = set()
        self._bodies: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.sent: Counter[str] = Counter()  # requests sent, by part ("apply" for the children)

    def _sent(self, what: str) -> None:
        with self._lock:
            self.sent[what] += 1

    def watches(self) -> tuple[str, ...]:
        """Only what its parts need: a client with no Ready write or Event has no reason to
        watch Deployments, and one without the gate none to watch pods."""
        needs = {
            "ModelDeployment": True,
            "Deployment": bool(self.parts & {"status", "event"}),
            "Pod": "gate" in self.parts,
        }
        return tuple(kind for kind in WATCHES if needs[kind])

    def start(self) -> ContractClient:
        handlers = {
            "ModelDeployment": self._on_model_deployment,
            "Deployment": self._on_deployment,
            "Pod": self._on_pod,
        }
        for kind in self.watches():
            threading.Thread(target=self._watch, args=(BY_KIND[kind], handlers[kind]), daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.pool.shutdown(wait=True)

    def _watch(self, kind: Kind, on_object: Callable[[dict[str, Any]], None]) -> None:
        try:
            items, version = self.kube.list_with_version(kind, self.namespace)
            for item in items:
                on_object(item)
            while not self.stopping.is_set():
                for event in self.kube.watch(kind, self.namespace, version or "", WATCH_SECONDS):
                    obj = event["object"]
                    if event["type"] == "ERROR":  # 410 Gone and the like: this phase cannot go on
                        raise RuntimeError(f"watch of {kind.plural}: {obj.get('message')}")
                    version = obj["metadata"].get("resourceVersion", version)
                    if event["type"] in ("ADDED", "MODIFIED"):
                        on_object(obj)
                    if self.stopping.is_set():
                        return
        except Exception as exc:  # the phase reports it, whatever it was
            if not self.stopping.is_set():
                self.errors.append(exc)

    def _first(self, kind: str, name: str) -> bool:
        with self._lock:
            if (kind, name) in self._done:
                return False
            self._done.add((kind, name))
            return True

    def _submit(self, work: Callable[..., Any], *args: Any) -> None:
        def report(future: Future[Any]) -> None:
            if future.exception() is not None:
                self.errors.append(future.exception())  # type: ignore[arg-type]

        self.pool.submit(work, *args).add_done_callback(report)

    def _on_model_deployment(self, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        if self._first("ModelDeployment", name):
            with self._lock:
                self._bodies[name] = body
            self._submit(self._apply_children, body)

    def _apply_children(self, body: dict[str, Any]) -> None:
        md = ModelDeployment.from_body(body)
        deployment = build_deployment(md, 1, self.replicas, "stable")
        if "gate" not in self.parts:  # nothing would open it: the pods are ready as the floor's are
            deployment["spec"]["template"]["spec"].pop("readinessGates", None)
        for manifest in (build_config_map(md, 1), deployment, build_service(md)):
            self.kube.apply(manifest, FIELD_MANAGER)
            self._sent("apply")
        if "status" in self.parts:
            self.writes.patch_status(md.namespace, md.name, status("Progressing", 0))
            self._sent("status")

    def _on_deployment(self, deployment: dict[str, Any]) -> None:
        owner = deployment["metadata"].get("labels", {}).get(LABEL_NAME, "")
        if owner and deployment_available(deployment) and self._first("Available", owner):
            self._submit(self._ready, owner)

    def _ready(self, name: str) -> None:
        if "status" in self.parts:
            self.writes.patch_status(self.namespace, name, status("Ready", 1))
            self._sent("status")
        if "event" in self.parts:
            with self._lock:
                body = self._bodies[name]
            self.writes.post_event(body, "Normal", "Ready", "version 1 is serving on 1/1 pods")
            self._sent("event")

    def _on_pod(self, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        if awaits_gate(pod) and self._first("Pod", name):
            self._submit(self._open_gate, name)

    def _open_gate(self, name: str) -> None:
        self.writes.open_model_gate(self.namespace, name, "opened without asking the model")
        self._sent("gate")
