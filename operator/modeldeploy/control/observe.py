"""What the watches show about one ModelDeployment, in one place: its pods, its
Deployments by version, how many pods serve each version, fetch failures, artifact
digests and the one-shot actions requested on it. Reads only the cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..api.names import (
    ACTION_ANNOTATIONS,
    CONDITION_MODEL_AVAILABLE,
    LABEL_MODEL_AVAILABLE,
    LABEL_VERSION,
    SERVING_CONTAINER,
    version_in_child_name,
)
from ..api.spec import ModelDeployment
from ..api.status import ActionValues
from ..api.times import parse_time
from ..kube.cache import ObjectCache
from ..rollout.child_state import (
    FetchFailure,
    ObservedDeployment,
    fetch_failure_of_pod,
    fetched_digest_of_pod,
)

Body = dict[str, Any]


@dataclass(frozen=True)
class Observation:
    # Every pod labelled with the resource (pods are owned by ReplicaSets: matched by labels).
    all_pods: list[Body]
    # Those not being deleted.
    pods: list[Body]
    deployments: dict[int, ObservedDeployment]
    # version -> artifact digest its newest reporting pod fetched.
    digests: dict[int, str]
    actions: ActionValues

    def fetch_failure(self, version: int) -> FetchFailure | None:
        """Why a pod of ``version`` could not fetch its model, if one could not."""
        for pod in self.all_pods:
            if version_of(pod) == version:
                failure = fetch_failure_of_pod(pod)
                if failure is not None:
                    return failure
        return None

    def serving_pods(self, version: int) -> tuple[tuple[str, str], ...]:
        """(name, IP) of ``version``'s pods that passed the model gate, sorted."""
        return tuple(
            sorted(
                (p["metadata"]["name"], pod_ip(p))
                for p in self.pods
                if version_of(p) == version and passed_gate(p) and pod_ip(p)
            )
        )

    def gates_to_check(self) -> list[Body]:
        """Pods whose containers are ready and whose model gate has not opened yet."""
        return [p for p in self.pods if awaits_gate(p)]

    def gates_to_close(self) -> list[Body]:
        """Pods whose serving container went down after their gate opened: the model the
        operator saw AVAILABLE went with the old process, and TF Serving's status endpoint
        (so the readiness probe) answers while the new one is still LOADING."""
        return [p for p in self.pods if gate_open(p) and serving_restarted_since_gate(p)]


def observe(cache: ObjectCache, md: ModelDeployment, body: Body) -> Observation:
    all_pods = cache.labelled("Pod", md.namespace, md.name)
    pods = [p for p in all_pods if not p["metadata"].get("deletionTimestamp")]
    serving = serving_counts(pods)
    versioned = (
        _with_version_of_name(d, md.name) for d in cache.children("Deployment", md.namespace, md.name, md.uid)
    )
    deployments = {
        dep.version: dep
        for dep in (
            ObservedDeployment.from_manifest(d, serving_replicas=serving.get(version_of(d), 0))
            for d in versioned
            if d is not None
        )
    }
    return Observation(all_pods, pods, deployments, _digests(all_pods), requested_actions(body))


def _with_version_of_name(deployment: Body, md_name: str) -> Body | None:
    """The Deployment labelled with the version its name says; None when its name is none of
    the resource's. A version label edited by hand must not stop every pass (nor pass
    the child off as another version's): the apply puts the label back."""
    version = version_in_child_name(md_name, deployment["metadata"].get("name", ""))
    if version is None:
        return None
    meta = deployment["metadata"]
    labels = meta.get("labels") or {}
    if labels.get(LABEL_VERSION) == str(version):
        return deployment
    # A copy: the cache's bodies are shared and never changed.
    return {**deployment, "metadata": {**meta, "labels": {**labels, LABEL_VERSION: str(version)}}}


def requested_actions(body: Body) -> ActionValues:
    """The one-shot annotations on the resource right now."""
    annotations = body["metadata"].get("annotations") or {}
    return ActionValues(**{action: annotations.get(key) for action, key in ACTION_ANNOTATIONS.items()})


def version_of(obj: Body) -> int:
    text = (obj.get("metadata", {}).get("labels") or {}).get(LABEL_VERSION, "")
    return int(text) if text.isdigit() else 0


def pod_ip(pod: Body) -> str:
    return str((pod.get("status") or {}).get("podIP") or "")


def _condition(pod: Body, type_: str) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == type_ and c.get("status") == "True" for c in conditions)


def pod_ready(pod: Body) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and _condition(pod, "Ready")


def awaits_gate(pod: Body) -> bool:
    """The pod's containers are ready and its model gate has not opened yet. Not "Ready":
    with the gate in its readinessGates a pod is Ready only after it opens."""
    return not gate_open(pod) and bool(pod_ip(pod)) and _condition(pod, "ContainersReady")


def gate_open(pod: Body) -> bool:
    """The operator has opened the pod's model gate: the label Services select and, for a
    pod that names it in its readinessGates, the condition that lets it become Ready."""
    labelled = (pod["metadata"].get("labels") or {}).get(LABEL_MODEL_AVAILABLE) == "true"
    gates = {g.get("conditionType") for g in (pod.get("spec") or {}).get("readinessGates") or []}
    return labelled and (CONDITION_MODEL_AVAILABLE not in gates or _condition(pod, CONDITION_MODEL_AVAILABLE))


def passed_gate(pod: Body) -> bool:
    """Ready, and the operator saw TF Serving report its model version AVAILABLE since its
    serving container last started."""
    return gate_open(pod) and pod_ready(pod) and not serving_restarted_since_gate(pod)


def serving_restarted_since_gate(pod: Body) -> bool:
    """The serving container is down, or an instance of it ended after the gate's condition
    was set: the process the operator saw serve its model is gone. (The previous instance's
    end, not the new one's start: a restart just before the gate opened is not a reason to
    close it.) Pods without the condition (made before readiness gates) keep their gate."""
    conditions = (pod.get("status") or {}).get("conditions") or []
    gate = next((c for c in conditions if c.get("type") == CONDITION_MODEL_AVAILABLE), None)
    if gate is None or gate.get("status") != "True":
        return False
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    serving = next((c for c in statuses if c.get("name") == SERVING_CONTAINER), None)
    if serving is None:
        return False
    if (serving.get("state") or {}).get("running") is None:
        return True  # the process is gone (terminated, or waiting to start again)
    ended = ((serving.get("lastState") or {}).get("terminated") or {}).get("finishedAt") or ""
    opened = gate.get("lastTransitionTime") or ""
    return bool(ended and opened) and parse_time(ended) > parse_time(opened)


def serving_counts(pods: list[Body]) -> dict[int, int]:
    """version -> pods that passed the model gate."""
    counts: dict[int, int] = {}
    for pod in pods:
        if passed_gate(pod):
            counts[version_of(pod)] = counts.get(version_of(pod), 0) + 1
    return counts


def _digests(pods: list[Body]) -> dict[int, str]:
    """version -> artifact digest reported by its newest pod that reported one."""
    newest: dict[int, tuple[str, str]] = {}
    for pod in pods:
        digest = fetched_digest_of_pod(pod)
        version = version_of(pod)
        if digest is None or not version:
            continue
        created = pod["metadata"].get("creationTimestamp", "")
        if version not in newest or created > newest[version][0]:
            newest[version] = (created, digest)
    return {version: digest for version, (_, digest) in newest.items()}
