"""The objects unit tests feed the operator: pods, Deployments and ModelDeployments (parsed,
or as the raw bodies the API server sends), each with only the fields a test gives."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from modeldeploy.api.names import (
    API_VERSION,
    KIND,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_TRACK,
    LABEL_VERSION,
    MANAGED_BY,
    TRACK_STABLE,
)
from modeldeploy.api.spec import ModelDeployment, ModelDeploymentSpec
from modeldeploy.api.status import ModelDeploymentStatus
from modeldeploy.api.times import parse_time
from modeldeploy.rollout.child_state import ObservedDeployment
from modeldeploy.rollout.plan import plan
from modeldeploy.rollout.types import Plan, PlanInputs

Body = dict[str, Any]

NAMESPACE = "ml"
UID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
# A valid spec as a user would write it.
SAMPLE_SPEC: Body = {
    "model": {"storageUri": "s3://models/mnist", "version": 3, "storageSecretName": "s3-creds"},
    "runtime": {
        "resources": {"limits": {"cpu": "2", "memory": "2Gi", "nvidia.com/gpu": "1"}},
        "batching": {"maxBatchSize": 16},
        "args": ["--tensorflow_intra_op_parallelism=2"],
    },
    "replicas": 2,
    "rollout": {"strategy": "Immediate", "progressDeadlineSeconds": 300},
}


def metadata(
    name: str,
    *,
    namespace: str | None = NAMESPACE,
    labels: Mapping[str, str] | None = None,
    resource_version: str | None = None,
    generation: int | None = None,
    managed_fields: list[Body] | None = None,
    owner_uid: str | None = None,
    created: str | None = None,
) -> Body:
    """An object's metadata; a field left at None is absent, as the operator may find it."""
    fields = {
        "name": name,
        "namespace": namespace,
        "labels": dict(labels) if labels is not None else None,
        "resourceVersion": resource_version,
        "generation": generation,
        "managedFields": managed_fields,
        "ownerReferences": [{"uid": owner_uid}] if owner_uid is not None else None,
        "creationTimestamp": created,
    }
    return {key: value for key, value in fields.items() if value is not None}


def serving_labels(name: str, version: int | str) -> dict[str, str]:
    """The labels the operator puts on a version's Deployment and pods."""
    return {LABEL_NAME: name, LABEL_MANAGED_BY: MANAGED_BY, LABEL_VERSION: str(version)}


def conditions(statuses: Mapping[str, str]) -> list[Body]:
    """``{type: status}`` as a status's list of conditions, in the order given."""
    return [{"type": kind, "status": status} for kind, status in statuses.items()]


def pod(
    name: str = "mnist-v1-a", *, spec: Body | None = None, status: Body | None = None, **meta: Any
) -> Body:
    """A pod; ``meta`` goes to :func:`metadata`."""
    body: Body = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata(name, **meta)}
    if spec is not None:
        body["spec"] = spec
    if status is not None:
        body["status"] = status
    return body


def pod_status(
    phase: str = "Running",
    *,
    ip: str | None = None,
    condition_statuses: Mapping[str, str] | None = None,
    **more: Any,
) -> Body:
    """A pod's status: its phase, podIP, conditions (``{type: status}``) and ``more`` fields as given."""
    status: Body = {"phase": phase}
    if ip is not None:
        status["podIP"] = ip
    if condition_statuses is not None:
        status["conditions"] = conditions(condition_statuses)
    return {**status, **more}


def deployment(
    name: str = "mnist-v1", *, spec: Body | None = None, status: Body | None = None, **meta: Any
) -> Body:
    """A Deployment; ``meta`` goes to :func:`metadata`."""
    body: Body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(name, **meta)}
    if spec is not None:
        body["spec"] = spec
    if status is not None:
        body["status"] = status
    return body


def deployment_status(
    replicas: int,
    *,
    observed: int | None = None,
    updated: int | None = None,
    ready: int | None = None,
    available: int | None = None,
) -> Body:
    """A Deployment's status: its replica counts (a None is absent) and the generation it observed."""
    fields = {
        "observedGeneration": observed,
        "replicas": replicas,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
    }
    return {key: value for key, value in fields.items() if value is not None}


def model_deployment(spec: Body | None = None, name: str = "mnist", generation: int = 1) -> ModelDeployment:
    """A ModelDeployment as the operator parses it: ``SAMPLE_SPEC`` unless a spec is given."""
    return ModelDeployment(
        name=name,
        namespace=NAMESPACE,
        uid=UID,
        generation=generation,
        spec=ModelDeploymentSpec.model_validate(copy.deepcopy(spec or SAMPLE_SPEC)),
    )


def model_deployment_body(
    name: str = "mnist", *, spec: Body | None = None, status: Body | None = None, **meta: Any
) -> Body:
    """A ModelDeployment as the API server sends it; ``meta`` goes to :func:`metadata`."""
    body: Body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata(name, **meta)}
    if spec is not None:
        body["spec"] = spec
    if status is not None:
        body["status"] = status
    return body


T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"


def observed_deployment(
    version: int,
    replicas: int = 2,
    ready: int = 2,
    generation: int = 1,
    observed: int = 1,
    progressing: tuple[str, str] = ("True", "NewReplicaSetAvailable"),
    available: str = "True",
) -> ObservedDeployment:
    """What the decisions see of one version's Deployment (a typed view of its manifest)."""
    status = deployment_status(replicas, observed=observed, updated=replicas, ready=ready, available=ready)
    status["conditions"] = [
        {"type": "Available", "status": available, "reason": "MinimumReplicasAvailable"},
        {
            "type": "Progressing",
            "status": progressing[0],
            "reason": progressing[1],
            "message": 'ReplicaSet "mnist-v3-abc" has timed out progressing.',
        },
    ]
    labels = {LABEL_VERSION: str(version), LABEL_TRACK: TRACK_STABLE}
    meta = metadata(f"mnist-v{version}", namespace=None, labels=labels, generation=generation)
    return ObservedDeployment.from_manifest(
        {"metadata": meta, "spec": {"replicas": replicas}, "status": status}
    )


def make_plan(
    md: Any,
    status: ModelDeploymentStatus,
    observed: dict[int, ObservedDeployment],
    now: str,
    inputs: PlanInputs | None = None,
) -> Plan:
    """The plan at ``now`` as the clock writes it; the decisions take it as a datetime."""
    return plan(md, status, observed, parse_time(now), inputs)
