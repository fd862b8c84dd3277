"""The serving Deployment of one model version and its TF Serving ConfigMap.

Pods run TF Serving non-root with a read-only root filesystem; the model arrives
through the fetcher init container (or a mounted claim), the config from the ConfigMap.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..api import fetch_protocol
from ..api.names import (
    ANNOTATION_CONFIG_HASH,
    CONDITION_MODEL_AVAILABLE,
    FETCHER_CONTAINER,
    GRPC_PORT,
    LABEL_TRACK,
    REST_PORT,
    SERVING_CONTAINER,
    SERVING_UID,
    config_map_name,
    deployment_name,
)
from ..api.quantity import to_bytes
from ..api.spec import ModelDeployment
from . import tfconfig
from .meta import Manifest, metadata, version_labels


@dataclass(frozen=True)
class BuildOptions:
    """Operator-wide settings that shape children (from the operator's settings)."""

    fetcher_image: str = "modeldeploy/fetcher:0.1.0"
    # More than one: the operator's replicas share the resources by shards, and each child
    # carries its resource's shard label (``control.shard_select``).
    shard_count: int = 1


def config_data(md: ModelDeployment, version: int) -> dict[str, str]:
    runtime = md.spec.runtime
    data = {
        tfconfig.MODEL_CONFIG_FILE: tfconfig.model_config_text(md.model_name, version),
        tfconfig.MONITORING_CONFIG_FILE: tfconfig.monitoring_config_text(tfconfig.MonitoringConfig()),
    }
    if runtime.batching is not None:
        data[tfconfig.BATCHING_CONFIG_FILE] = tfconfig.batching_parameters_text(runtime.batching)
    return data


def build_config_map(md: ModelDeployment, version: int) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(md, config_map_name(md.name, version), version_labels(md, version)),
        "data": config_data(md, version),
    }


def _config_hash(md: ModelDeployment, version: int) -> str:
    """Pods restart when their config changes; the ConfigMap alone would not do it."""
    payload = json.dumps({"data": config_data(md, version), "args": md.spec.runtime.args}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _model_source(
    md: ModelDeployment, version: int, fetcher_image: str
) -> tuple[list[Manifest], list[Manifest], Manifest]:
    """Init containers, volumes and the serving container's model mount for the storage URI."""
    model_dir = f"{tfconfig.MODELS_DIR}/{md.model_name}"
    uri = md.spec.model.storage_uri
    if uri.startswith("pvc://"):
        # A claim is mounted where TF Serving reads, not copied.
        claim, _, sub_path = uri[len("pvc://") :].partition("/")
        volume = {"name": "model", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        mount = {"name": "model", "mountPath": model_dir, "readOnly": True}
        if sub_path:
            mount["subPath"] = sub_path
        return [], [volume], mount
    fetcher: Manifest = {
        "name": FETCHER_CONTAINER,
        "image": fetcher_image,
        "args": fetch_protocol.build_args(fetch_protocol.FetchRequest(uri, version, model_dir)),
        "volumeMounts": [
            {"name": "model", "mountPath": tfconfig.MODELS_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "terminationMessagePolicy": fetch_protocol.TERMINATION_MESSAGE_POLICY,
        "securityContext": _container_security_context(),
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
    }
    secret = md.spec.model.storage_secret_name
    if secret:
        fetcher["envFrom"] = [{"secretRef": {"name": secret}}]
    # The fetcher stops at the volume's limit, with a reason, before the kubelet would evict the pod.
    size_limit = md.spec.runtime.model_volume_size_limit
    limits = fetch_protocol.limits_env(max_bytes=to_bytes(size_limit), expected_digest=md.spec.model.digest)
    fetcher["env"] = [{"name": name, "value": value} for name, value in limits.items()]
    volume = {"name": "model", "emptyDir": {"sizeLimit": size_limit}}
    mount = {"name": "model", "mountPath": tfconfig.MODELS_DIR, "readOnly": True}
    return [fetcher], [volume], mount


def _container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _placement(md: ModelDeployment, pod_labels: dict[str, str]) -> Manifest:
    """Where the serving pods run and as whom: the runtime's fields, set only when given, so a
    resource that sets none keeps the same pod template (and its pods) as fields are added."""
    runtime = md.spec.runtime
    placed: Manifest = {}
    if runtime.node_selector:
        placed["nodeSelector"] = dict(runtime.node_selector)
    if runtime.tolerations:
        placed["tolerations"] = [
            t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in runtime.tolerations
        ]
    if runtime.topology_spread_constraints:
        # Each spreads this version's pods: the selector is the version's own labels.
        placed["topologySpreadConstraints"] = [
            {
                **c.model_dump(by_alias=True, exclude_none=True, mode="json"),
                "labelSelector": {"matchLabels": dict(pod_labels)},
            }
            for c in runtime.topology_spread_constraints
        ]
    if runtime.affinity:
        placed["affinity"] = runtime.affinity.model_dump(by_alias=True, exclude_defaults=True, mode="json")
    if runtime.priority_class_name:
        placed["priorityClassName"] = runtime.priority_class_name
    if runtime.service_account_name:
        placed["serviceAccountName"] = runtime.service_account_name
    return placed


def build_deployment(
    md: ModelDeployment,
    version: int,
    replicas: int | None,
    track: str,
    options: BuildOptions = BuildOptions(),
) -> Manifest:
    """The serving Deployment of one model version. ``replicas=None`` leaves the count to an HPA."""
    runtime = md.spec.runtime
    pod_labels = version_labels(md, version)
    init_containers, volumes, model_mount = _model_source(md, version, options.fetcher_image)
    serving: Manifest = {
        "name": SERVING_CONTAINER,
        "image": runtime.image,
        "args": tfconfig.server_args(runtime.batching, runtime.args),
        "ports": [
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "http", "containerPort": REST_PORT, "protocol": "TCP"},
        ],
        # Ready means this exact version answers on REST; an open port is not enough.
        "readinessProbe": {
            "httpGet": {"path": f"/v1/models/{md.model_name}/versions/{version}", "port": "http"},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "tcpSocket": {"port": "grpc"},
            "initialDelaySeconds": 30,
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
        "resources": copy.deepcopy(runtime.resources),
        "securityContext": _container_security_context(),
        "volumeMounts": [
            model_mount,
            {"name": "config", "mountPath": tfconfig.CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    pod_spec: Manifest = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": SERVING_UID,
            "runAsGroup": SERVING_UID,
            "fsGroup": SERVING_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [serving],
        # Ready only once the operator has seen this exact version AVAILABLE: a rolling
        # update (a runtime change) then replaces old pods no faster than new ones serve.
        "readinessGates": [{"conditionType": CONDITION_MODEL_AVAILABLE}],
        "volumes": [
            *volumes,
            {"name": "config", "configMap": {"name": config_map_name(md.name, version)}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    if init_containers:
        pod_spec["initContainers"] = init_containers
    pod_spec.update(_placement(md, pod_labels))
    if runtime.env:
        serving["env"] = [e.model_dump(by_alias=True, exclude_none=True, mode="json") for e in runtime.env]
    spec: Manifest = {
        "selector": {"matchLabels": pod_labels},
        "progressDeadlineSeconds": md.spec.rollout.progress_deadline_seconds,
        "revisionHistoryLimit": 2,
        # Never below the serving count while pods are replaced: a new pod must pass the
        # model gate (readinessGates) before an old one goes.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
        "template": {
            "metadata": {
                # The track label stays off the pod template: promoting a canary
                # to stable relabels the Deployment without restarting its pods.
                # The user's first: the operator's own keys (refused in the spec anyway) win.
                "labels": {**runtime.pod_labels, **pod_labels},
                "annotations": {**runtime.pod_annotations, ANNOTATION_CONFIG_HASH: _config_hash(md, version)},
            },
            "spec": pod_spec,
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(md, deployment_name(md.name, version), {**pod_labels, LABEL_TRACK: track}),
        "spec": spec,
    }


def build_replica_handover(deployment: Manifest, replicas: int) -> Manifest:
    """Only the replica count of ``deployment``: applied under the hand-over field manager
    so that count keeps an owner when the operator's own apply lets go of it (an HPA's)."""
    meta = deployment["metadata"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "spec": {"replicas": replicas},
    }
