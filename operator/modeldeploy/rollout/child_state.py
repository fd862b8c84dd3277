"""Typed views of what the API server reports about children (Deployments, pods): the plan's input."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..api.fetch_protocol import read_termination
from ..api.names import FETCHER_CONTAINER, LABEL_TRACK, LABEL_VERSION


@dataclass(frozen=True)
class DeploymentCondition:
    status: str
    reason: str
    message: str


@dataclass(frozen=True)
class ObservedDeployment:
    name: str
    version: int
    track: str  # stable | canary: the label the operator gave it
    generation: int
    observed_generation: int
    spec_replicas: int
    replicas: int
    updated_replicas: int
    conditions: dict[str, DeploymentCondition] = field(default_factory=dict)
    # Pods whose model TF Serving reports AVAILABLE (the model-aware gate); the
    # pass counts them from pods; the default is the Deployment's ready count.
    serving_replicas: int = 0

    @classmethod
    def from_manifest(cls, obj: dict[str, Any], serving_replicas: int | None = None) -> ObservedDeployment:
        meta = obj.get("metadata", {})
        spec = obj.get("spec", {})
        status = obj.get("status") or {}
        labels = meta.get("labels") or {}
        return cls(
            name=meta.get("name", ""),
            version=int(labels.get(LABEL_VERSION, "0")),
            track=labels.get(LABEL_TRACK, ""),
            generation=int(meta.get("generation", 0)),
            observed_generation=int(status.get("observedGeneration", 0)),
            spec_replicas=int(spec.get("replicas", 1)),
            replicas=int(status.get("replicas", 0)),
            updated_replicas=int(status.get("updatedReplicas", 0)),
            conditions={
                c["type"]: DeploymentCondition(
                    c.get("status", "Unknown"), c.get("reason", ""), c.get("message", "")
                )
                for c in status.get("conditions") or []
            },
            serving_replicas=int(status.get("readyReplicas", 0))
            if serving_replicas is None
            else serving_replicas,
        )

    @property
    def complete(self) -> bool:
        """The controller saw the latest spec, every pod is of it, and enough of them serve.

        Serving pods are ready and passed the model gate, which implies available (no
        minReadySeconds is set); waiting for ``availableReplicas`` as well would only wait
        for the ReplicaSet and Deployment status updates to catch up, and write an extra
        "serving but not complete" status in between.
        """
        return (
            self.observed_generation >= self.generation
            and self.updated_replicas >= self.spec_replicas
            and self.serving_replicas >= self.spec_replicas
            and self.replicas == self.updated_replicas
        )

    @property
    def deadline_exceeded(self) -> bool:
        progressing = self.conditions.get("Progressing")
        return (
            progressing is not None
            and progressing.status == "False"
            and progressing.reason == "ProgressDeadlineExceeded"
        )


@dataclass(frozen=True)
class FetchFailure:
    """Why the model fetch init container of a pod failed, from its termination message."""

    pod: str
    message: str


def _fetcher_statuses(pod: dict[str, Any]) -> list[dict[str, Any]]:
    statuses = (pod.get("status") or {}).get("initContainerStatuses") or []
    return [cs for cs in statuses if cs.get("name") == FETCHER_CONTAINER]


def _terminated(status: dict[str, Any], state_key: str) -> dict[str, Any] | None:
    return (status.get(state_key) or {}).get("terminated") or None


def fetch_failure_of_pod(pod: dict[str, Any]) -> FetchFailure | None:
    """Why the pod's fetcher failed: its current run if it ended, else (restarting: waiting,
    or running its next try) the run before. A run that ended well outweighs any before it."""
    for status in _fetcher_statuses(pod):
        terminated = _terminated(status, "state") or _terminated(status, "lastState")
        if terminated is None:
            continue
        report = read_termination(int(terminated.get("exitCode", 0)), terminated.get("message") or "")
        if not report.succeeded:
            return FetchFailure(pod=pod.get("metadata", {}).get("name", ""), message=report.line)
    return None


def fetched_digest_of_pod(pod: dict[str, Any]) -> str | None:
    """The artifact digest the fetcher reported in its successful termination message."""
    for status in _fetcher_statuses(pod):
        terminated = _terminated(status, "state")
        if terminated is None:
            continue
        report = read_termination(int(terminated.get("exitCode", 1)), terminated.get("message") or "")
        if report.digest is not None:
            return report.digest
    return None
