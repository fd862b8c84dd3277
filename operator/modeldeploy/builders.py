"""Pure functions from a ModelDeployment to the child manifests it needs.

No I/O, no clock: the same input gives the same dicts, so every pass can apply
the full desired state and golden tests can pin it. Names are fixed (never
``generateName``) so retries and restarts never make a second child.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from . import models, tfconfig
from .models import ModelDeployment

MANAGED_BY = "modeldeploy"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_VERSION = f"{models.GROUP}/version"
LABEL_TRACK = f"{models.GROUP}/track"
ANNOTATION_CONFIG_HASH = f"{models.GROUP}/config-hash"
# Set on a pod by the operator once TF Serving reports its version AVAILABLE.
LABEL_MODEL_AVAILABLE = f"{models.GROUP}/model-available"
SERVING_CONTAINER = "tensorflow-serving"
FETCHER_CONTAINER = "fetch-model"
SERVING_UID = 1000

Manifest = dict[str, Any]


@dataclass(frozen=True)
class BuildOptions:
    """Operator-wide settings that shape children (from the operator's environment)."""

    fetcher_image: str = "modeldeploy/fetcher:0.1.0"


def deployment_name(md_name: str, version: int) -> str:
    return f"{md_name}-v{version}"


def config_map_name(md_name: str, version: int) -> str:
    return f"{md_name}-v{version}-config"


def child_labels(md: ModelDeployment) -> dict[str, str]:
    return {LABEL_NAME: md.name, LABEL_MANAGED_BY: MANAGED_BY}


def version_labels(md: ModelDeployment, version: int) -> dict[str, str]:
    return {**child_labels(md), LABEL_VERSION: str(version)}


def owner_reference(md: ModelDeployment) -> dict[str, Any]:
    return {
        "apiVersion": f"{models.GROUP}/{models.VERSION}",
        "kind": models.KIND,
        "name": md.name,
        "uid": md.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(md: ModelDeployment, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": md.namespace,
        "labels": dict(labels),
        "ownerReferences": [owner_reference(md)],
    }


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
        "metadata": _metadata(md, config_map_name(md.name, version), version_labels(md, version)),
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
        "args": [uri, str(version), model_dir],
        "volumeMounts": [
            {"name": "model", "mountPath": tfconfig.MODELS_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": _container_security_context(),
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
    }
    secret = md.spec.model.storage_secret_name
    if secret:
        fetcher["envFrom"] = [{"secretRef": {"name": secret}}]
    volume = {"name": "model", "emptyDir": {}}
    mount = {"name": "model", "mountPath": tfconfig.MODELS_DIR, "readOnly": True}
    return [fetcher], [volume], mount


def _container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


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
            {"name": "grpc", "containerPort": tfconfig.GRPC_PORT, "protocol": "TCP"},
            {"name": "http", "containerPort": tfconfig.REST_PORT, "protocol": "TCP"},
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
        "volumes": [
            *volumes,
            {"name": "config", "configMap": {"name": config_map_name(md.name, version)}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    if init_containers:
        pod_spec["initContainers"] = init_containers
    spec: Manifest = {
        "selector": {"matchLabels": pod_labels},
        "progressDeadlineSeconds": md.spec.rollout.progress_deadline_seconds,
        "revisionHistoryLimit": 2,
        "template": {
            "metadata": {
                # The track label stays off the pod template: promoting a canary
                # to stable relabels the Deployment without restarting its pods.
                "labels": dict(pod_labels),
                "annotations": {ANNOTATION_CONFIG_HASH: _config_hash(md, version)},
            },
            "spec": pod_spec,
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(md, deployment_name(md.name, version), {**pod_labels, LABEL_TRACK: track}),
        "spec": spec,
    }


def version_service_name(md_name: str, version: int) -> str:
    return f"{md_name}-v{version}"


def _service(md: ModelDeployment, name: str, labels: dict[str, str], selector: dict[str, str]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(md, name, labels),
        "spec": {
            "type": "ClusterIP",
            # Only pods whose model is loaded: the gate label, not just readiness.
            "selector": {**selector, LABEL_MODEL_AVAILABLE: "true"},
            "ports": [
                {"name": "grpc", "port": tfconfig.GRPC_PORT, "targetPort": "grpc", "protocol": "TCP"},
                {"name": "http", "port": tfconfig.REST_PORT, "targetPort": "http", "protocol": "TCP"},
            ],
        },
    }


def build_service(md: ModelDeployment) -> Manifest:
    """Service ``<name>``: serving pods of every version, so traffic splits by replica counts."""
    return _service(md, md.name, child_labels(md), child_labels(md))


def build_version_service(md: ModelDeployment, version: int) -> Manifest:
    """Service ``<name>-v<version>``: one version's serving pods, a backend of the HTTPRoute."""
    labels = version_labels(md, version)
    return _service(md, version_service_name(md.name, version), labels, labels)


def build_http_route(md: ModelDeployment, weights: dict[int, int]) -> Manifest:
    """HTTPRoute ``<name>``: version -> weight, exactly the canary step's weight."""
    gateway = md.spec.traffic.gateway
    spec: Manifest = {
        "parentRefs": copy.deepcopy(gateway.parent_refs) if gateway else [],
        "rules": [
            {
                "backendRefs": [
                    {
                        "name": version_service_name(md.name, version),
                        "port": tfconfig.REST_PORT,
                        "weight": weight,
                    }
                    for version, weight in sorted(weights.items())
                ]
            }
        ],
    }
    if gateway and gateway.hostnames:
        spec["hostnames"] = list(gateway.hostnames)
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": _metadata(md, md.name, child_labels(md)),
        "spec": spec,
    }


def build_network_policy(md: ModelDeployment) -> Manifest | None:
    """Ingress to the serving pods on the gRPC and REST ports only, from anywhere."""
    if not md.spec.runtime.network_policy:
        return None
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(md, md.name, child_labels(md)),
        "spec": {
            "podSelector": {"matchLabels": child_labels(md)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "ports": [
                        {"protocol": "TCP", "port": tfconfig.GRPC_PORT},
                        {"protocol": "TCP", "port": tfconfig.REST_PORT},
                    ]
                }
            ],
        },
    }


def build_hpa(md: ModelDeployment, version: int) -> Manifest | None:
    autoscaling = md.spec.autoscaling
    if autoscaling is None:
        return None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(md, md.name, child_labels(md)),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": deployment_name(md.name, version),
            },
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": autoscaling.target_cpu_utilization_percentage,
                        },
                    },
                }
            ],
        },
    }


def endpoints(md: ModelDeployment) -> models.Endpoints:
    host = f"{md.name}.{md.namespace}.svc"
    return models.Endpoints(
        rest=f"http://{host}:{tfconfig.REST_PORT}/v1/models/{md.model_name}",
        grpc=f"{host}:{tfconfig.GRPC_PORT}",
    )
