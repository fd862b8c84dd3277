"""The HorizontalPodAutoscaler: present only with ``spec.autoscaling``, on the serving version."""

from __future__ import annotations

from ..api.names import deployment_name
from ..api.spec import ModelDeployment
from .meta import Manifest, child_labels, metadata


def build_hpa(md: ModelDeployment, version: int) -> Manifest | None:
    autoscaling = md.spec.autoscaling
    if autoscaling is None:
        return None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(md, md.name, child_labels(md)),
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
