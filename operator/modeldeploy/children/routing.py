"""How traffic reaches the serving pods: Services, the HTTPRoute of the GatewayAPI router,
and the optional NetworkPolicy. Every Service selects the model gate's label."""

from __future__ import annotations

from ..api.names import GRPC_PORT, LABEL_MODEL_AVAILABLE, REST_PORT, version_service_name
from ..api.spec import ModelDeployment
from .meta import Manifest, child_labels, metadata, version_labels


def _service(md: ModelDeployment, name: str, labels: dict[str, str], selector: dict[str, str]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(md, name, labels),
        "spec": {
            "type": "ClusterIP",
            # Only pods whose model is loaded: the gate label, not just readiness.
            "selector": {**selector, LABEL_MODEL_AVAILABLE: "true"},
            "ports": [
                {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP"},
                {"name": "http", "port": REST_PORT, "targetPort": "http", "protocol": "TCP"},
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
        "parentRefs": [ref.model_dump(by_alias=True, exclude_none=True) for ref in gateway.parent_refs]
        if gateway
        else [],
        "rules": [
            {
                "backendRefs": [
                    {
                        "name": version_service_name(md.name, version),
                        "port": REST_PORT,
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
        "metadata": metadata(md, md.name, child_labels(md)),
        "spec": spec,
    }


def build_network_policy(md: ModelDeployment) -> Manifest | None:
    """Ingress to the serving pods on the gRPC and REST ports only, from anywhere."""
    if not md.spec.runtime.network_policy:
        return None
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(md, md.name, child_labels(md)),
        "spec": {
            "podSelector": {"matchLabels": child_labels(md)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "ports": [
                        {"protocol": "TCP", "port": GRPC_PORT},
                        {"protocol": "TCP", "port": REST_PORT},
                    ]
                }
            ],
        },
    }
