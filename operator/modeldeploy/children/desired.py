"""The whole desired state of one ModelDeployment for a plan: what to apply, in which
order, which replica counts to hand over, and what to remove. Pure.

Pods first: they take longest to become ready. Creating a Service also allocates its
ClusterIP, which a busy API server does one at a time; applied first, that wait
delayed every new resource's pods (see docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

from ..api.names import config_map_name, deployment_name, version_service_name
from ..api.spec import ModelDeployment, Router
from ..rollout.types import Plan
from .deployment import BuildOptions, build_config_map, build_deployment
from .hpa import build_hpa
from .meta import Manifest, with_labels
from .routing import build_http_route, build_network_policy, build_service, build_version_service


@dataclass(frozen=True)
class DesiredState:
    # Applied in this order.
    children: list[Manifest] = field(default_factory=list)
    # (Deployment, replicas): under an HPA, the count is handed over at this size.
    handovers: list[tuple[Manifest, int]] = field(default_factory=list)
    # Optional kinds the spec turned off: every such child of the resource goes.
    absent_kinds: list[str] = field(default_factory=list)
    # (kind, name) of children of versions the plan no longer runs.
    deletions: list[tuple[str, str]] = field(default_factory=list)


def desired_state(
    md: ModelDeployment, plan: Plan, options: BuildOptions, labels: Mapping[str, str] | None = None
) -> DesiredState:
    """``labels`` go on every child (and the pods of its Deployments) besides their own:
    the shard label, with more than one shard. Each child is labelled as it is built, so a
    Deployment handed over is the very one applied."""
    label = partial(_labelled, dict(labels or {}))
    children, handovers = _version_children(md, plan, options, label)
    children.append(label(build_service(md)))
    gateway = md.spec.traffic.router is Router.GATEWAY_API
    if gateway:
        children += [label(build_version_service(md, v)) for v in sorted({vp.version for vp in plan.apply})]
    optional = _optional_children(md, plan, gateway)
    children += [label(manifest) for manifest in optional.values() if manifest is not None]
    return DesiredState(
        children=children,
        handovers=handovers,
        absent_kinds=[kind for kind, manifest in optional.items() if manifest is None],
        deletions=_deletions(md, plan, gateway),
    )


def _labelled(labels: dict[str, str], manifest: Manifest) -> Manifest:
    return with_labels(manifest, labels)


def _version_children(
    md: ModelDeployment, plan: Plan, options: BuildOptions, label: Callable[[Manifest], Manifest]
) -> tuple[list[Manifest], list[tuple[Manifest, int]]]:
    """Each version's ConfigMap and Deployment, pods first; the Deployments handed over."""
    children: list[Manifest] = []
    handovers: list[tuple[Manifest, int]] = []
    for version_plan in plan.apply:
        children.append(label(build_config_map(md, version_plan.version)))
        deployment = label(
            build_deployment(md, version_plan.version, version_plan.replicas, version_plan.track, options)
        )
        children.append(deployment)
        if version_plan.initial_replicas is not None:
            handovers.append((deployment, version_plan.initial_replicas))
    return children, handovers


def _optional_children(md: ModelDeployment, plan: Plan, gateway: bool) -> dict[str, Manifest | None]:
    """The children the spec may turn off, by kind (None: turned off)."""
    return {
        "HorizontalPodAutoscaler": build_hpa(md, plan.serving_version or plan.target_version),
        "NetworkPolicy": build_network_policy(md),
        "HTTPRoute": build_http_route(md, plan.route_weights()) if gateway else None,
    }


def _deletions(md: ModelDeployment, plan: Plan, gateway: bool) -> list[tuple[str, str]]:
    """(kind, name) of the children of versions the plan no longer runs."""
    deletions: list[tuple[str, str]] = []
    for version in plan.delete:
        deletions += [
            ("Deployment", deployment_name(md.name, version)),
            ("ConfigMap", config_map_name(md.name, version)),
        ]
        if gateway:
            deletions.append(("Service", version_service_name(md.name, version)))
    return deletions
