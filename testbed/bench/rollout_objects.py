"""What the benchmark's peer, Argo Rollouts, is given to do the operator's work: per object
the same ConfigMap, Service and pod template the operator makes, the Deployment replaced by
a Rollout with the operator's canary steps; and how its progress is read."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from modeldeploy.api.names import LABEL_MODEL_AVAILABLE
from modeldeploy.api.spec import ModelDeployment, ModelDeploymentSpec
from modeldeploy.api.times import parse_duration
from modeldeploy.children.deployment import build_config_map, build_deployment
from modeldeploy.children.meta import child_labels
from modeldeploy.children.routing import build_service

Manifest = dict[str, Any]
RESOURCE = ("argoproj.io", "v1alpha1", "rollouts")  # group, version, plural
# Its five CRDs, in its module's manifests/crds: the controller waits for every informer.
CRD_FILES = (
    "rollout-crd.yaml",
    "experiment-crd.yaml",
    "analysis-run-crd.yaml",
    "analysis-template-crd.yaml",
    "cluster-analysis-template-crd.yaml",
)
PAUSE_REASON = "CanaryPauseStep"


def model_deployment(name: str, namespace: str, md_spec: Manifest) -> ModelDeployment:
    """The ModelDeployment the operator would be given: the builders' input."""
    return ModelDeployment(
        name=name,
        namespace=namespace,
        uid="00000000-0000-0000-0000-000000000000",
        generation=1,
        spec=ModelDeploymentSpec.model_validate(md_spec),
    )


def unowned(manifest: Manifest) -> Manifest:
    """A child without its owner reference: no ModelDeployment exists for the GC to find."""
    manifest = copy.deepcopy(manifest)
    manifest["metadata"].pop("ownerReferences", None)
    return manifest


def pod_template(md: ModelDeployment, version: int) -> Manifest:
    """The operator's pod template of ``version``, without the model gate: Argo Rollouts
    knows nothing of models, and nothing would open the gate. Its pods carry from the start
    the label the operator sets once a pod serves its model, which the Service selects."""
    deployment = build_deployment(md, version, md.spec.replicas, "stable")
    template: Manifest = deployment["spec"]["template"]
    template["spec"].pop("readinessGates", None)
    template["metadata"]["labels"][LABEL_MODEL_AVAILABLE] = "true"
    return template


def canary_steps(md: ModelDeployment) -> list[Manifest]:
    """The operator's canary steps as Argo Rollouts' setWeight and pause steps."""
    steps: list[Manifest] = []
    for step in md.spec.rollout.effective_steps():
        if step.manual:
            raise ValueError("a pause only a person ends has no timed peer")
        steps += [
            {"setWeight": step.weight},
            {"pause": {"duration": f"{round(step.pause_time.total_seconds())}s"}},
        ]
    return steps


def rollout(md: ModelDeployment, version: int) -> Manifest:
    """A Rollout serving ``version`` with the operator's replicas, template and steps. No
    traffic router: weights are replica counts, as the operator's pod-scrape mode does."""
    return {
        "apiVersion": f"{RESOURCE[0]}/{RESOURCE[1]}",
        "kind": "Rollout",
        "metadata": {"name": md.name, "namespace": md.namespace, "labels": child_labels(md)},
        "spec": {
            "replicas": md.spec.replicas,
            "selector": {"matchLabels": child_labels(md)},
            "revisionHistoryLimit": 2,
            "template": pod_template(md, version),
            # The operator's surge: the stable keeps every pod while canary pods start.
            "strategy": {"canary": {"maxUnavailable": 0, "maxSurge": "25%", "steps": canary_steps(md)}},
        },
    }


def config_map(md: ModelDeployment, version: int) -> Manifest:
    """The operator's ConfigMap of ``version`` (TF Serving's model and monitoring config)."""
    return unowned(build_config_map(md, version))


def children(md: ModelDeployment, version: int) -> list[Manifest]:
    """What a user applies for Argo Rollouts: the ConfigMap, the Service and the Rollout."""
    return [
        config_map(md, version),
        unowned(build_service(md)),
        rollout(md, version),
    ]


def rollout_healthy(obj: Manifest) -> bool:
    """Argo Rollouts' own Healthy for this generation: its pods Ready, the old ones gone."""
    status = obj.get("status") or {}
    return status.get("phase") == "Healthy" and status.get("observedGeneration") == str(
        obj["metadata"]["generation"]
    )


def step_index(obj: Manifest) -> int | None:
    index = (obj.get("status") or {}).get("currentStepIndex")
    return None if index is None else int(index)


def pause_started(obj: Manifest) -> datetime | None:
    """When the canary's current pause began, as Argo Rollouts stored it (whole seconds)."""
    for condition in (obj.get("status") or {}).get("pauseConditions") or []:
        if condition.get("reason") == PAUSE_REASON:
            return datetime.fromisoformat(str(condition["startTime"]).replace("Z", "+00:00"))
    return None


def pause_seconds(obj: Manifest, index: int) -> float:
    """The duration of the pause step at ``index`` in the Rollout's own spec."""
    step = obj["spec"]["strategy"]["canary"]["steps"][index]
    return parse_duration(step["pause"]["duration"])
