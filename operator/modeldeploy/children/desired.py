"""The whole desired state of one ModelDeployment for a plan: what to apply, in which
order, which replica counts to hand over, and what to remove. Pure.

Pods first: they take longest to become ready. Creating a Service also allocates its
ClusterIP, which a busy API server does one at a time; applied first, that wait
delayed every new resource's pods (see docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

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
    the shard label, with more than one shard."""
    state = _desired_state(md, plan, options)
    if not labels:
        return state
    extra = dict(labels)
    deployments = {id(d): with_labels(d, extra) for d, _ in state.handovers}
    return replace(
        state,
        children=[deployments.get(id(c)) or with_labels(c, extra) for c in state.children],
        handovers=[(deployments[id(d)], size) for d, size in state.handovers],
    )


def _desired_state(md: ModelDeployment, plan: Plan, options: BuildOptions) -> DesiredState:
    children: list[Manifest] = []
    handovers: list[tuple[Manifest, int]] = []
    for version_plan in plan.apply:
        children.append(build_config_map(md, version_plan.version))
        deployment = build_deployment(
            md, version_plan.version, version_plan.replicas, version_plan.track, options
        )
        children.append(deployment)
        if version_plan.initial_replicas is not None:
            handovers.append((deployment, version_plan.initial_replicas))
    children.append(build_service(md))
    gateway = md.spec.traffic.router is Router.GATEWAY_API
    if gateway:
        children += [build_version_service(md, v) for v in sorted({vp.version for vp in plan.apply})]
    optional = {
        "HorizontalPodAutoscaler": build_hpa(md, plan.serving_version or plan.target_version),
        "NetworkPolicy": build_network_policy(md),
        "HTTPRoute": build_http_route(md, plan.route_weights()) if gateway else None,
    }
    children += [manifest for manifest in optional.values() if manifest is not None]
    deletions: list[tuple[str, str]] = []
    for version in plan.delete:
        deletions += [
            ("Deployment", deployment_name(md.name, version)),
            ("ConfigMap", config_map_name(md.name, version)),
        ]
        if gateway:
            deletions.append(("Service", version_service_name(md.name, version)))
    return DesiredState(
        children=children,
        handovers=handovers,
        absent_kinds=[kind for kind, manifest in optional.items() if manifest is None],
        deletions=deletions,
    )
