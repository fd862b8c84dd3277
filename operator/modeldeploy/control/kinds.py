"""The operator's table of kinds (which it reads, watches, applies) and what of each the
cache keeps: the API client resolves paths from it, the watches are made from it, the
drift check reads it.

Adding a child kind is one constant here (in the tuples it belongs to), one builder in
``children`` and one RBAC line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..api.names import FIELD_MANAGER, GROUP, KIND, LABEL_MANAGED_BY, LABEL_NAME, MANAGED_BY, PLURAL, VERSION
from ..kube.cache import PARTIAL, ObjectCache, Trim
from ..kube.kinds import Kind

# Children are watched only where they carry the managed-by label.
MANAGED = f"{LABEL_MANAGED_BY}={MANAGED_BY}"

MODEL_DEPLOYMENT = Kind(KIND, GROUP, VERSION, PLURAL)
DEPLOYMENT = Kind("Deployment", "apps", "v1", "deployments", MANAGED)
POD = Kind("Pod", "", "v1", "pods", MANAGED)
CONFIG_MAP = Kind("ConfigMap", "", "v1", "configmaps")
SERVICE = Kind("Service", "", "v1", "services")
HPA = Kind("HorizontalPodAutoscaler", "autoscaling", "v2", "horizontalpodautoscalers", MANAGED)
NETWORK_POLICY = Kind("NetworkPolicy", "networking.k8s.io", "v1", "networkpolicies", MANAGED)
HTTP_ROUTE = Kind("HTTPRoute", "gateway.networking.k8s.io", "v1", "httproutes", MANAGED)
EVENT = Kind("Event", "", "v1", "events")

KINDS = (MODEL_DEPLOYMENT, DEPLOYMENT, POD, CONFIG_MAP, SERVICE, HPA, NETWORK_POLICY, HTTP_ROUTE, EVENT)
BY_KIND = {k.kind: k for k in KINDS}
# Watched by the operator's own reflectors, per namespace; a change queues the owning
# ModelDeployment's pass. ModelDeployments themselves come through kopf's watch.
CHILD_WATCHES = (DEPLOYMENT, POD, HPA, NETWORK_POLICY, HTTP_ROUTE)
WATCHED = (MODEL_DEPLOYMENT, *CHILD_WATCHES)
# Children the operator applies and watches: a live one whose hash label differs drifted.
WATCHED_CHILDREN = frozenset(k.kind for k in (DEPLOYMENT, HPA, NETWORK_POLICY, HTTP_ROUTE))


def slim(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` without what no pass reads, since the cache holds every child of every resource:
    managedFields (often most of a small object's metadata) but for one fact, whether the
    operator's own apply still owns a Deployment's spec.replicas (``apply.owns_replicas``),
    and of the specs all the passes do not read: a pod's but its readinessGates, a Deployment's
    but its replicas (``observe`` reads only those, the metadata and the status; whether a
    Deployment drifted is told by the hash label the operator applied, not its template)."""
    spec = body.get("spec")
    if kind == "Pod" and spec is not None:
        body = {**body, "spec": {"readinessGates": spec.get("readinessGates") or []}}
    elif kind == "Deployment" and spec is not None:
        body = {**body, "spec": {k: v for k, v in spec.items() if k == "replicas"}}
    meta = body.get("metadata")
    if not meta or "managedFields" not in meta:
        return body
    kept = [
        {
            "manager": FIELD_MANAGER,
            "operation": "Apply",
            "fieldsV1": {"f:spec": {"f:replicas": {}}} if "f:replicas" in spec else {},
        }
        for entry in meta["managedFields"] or []
        if entry.get("manager") == FIELD_MANAGER and entry.get("operation") == "Apply"
        for spec in [(entry.get("fieldsV1") or {}).get("f:spec") or {}]
    ]
    slimmed = {k: v for k, v in meta.items() if k != "managedFields"}
    if kept:
        slimmed["managedFields"] = kept
    return {**body, "metadata": slimmed}


def identity(body: dict[str, Any]) -> dict[str, Any]:
    """What the cache keeps of a ModelDeployment whose passes another replica runs: enough
    to know it exists, at which version, and whose shard it is. Its whole body is read
    again when this replica takes the shard: every replica holding every resource whole
    (status included) was a part of its memory that did not fall as replicas were added."""
    meta = body.get("metadata") or {}
    kept = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "generation") if k in meta}
    return {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"), "metadata": kept, PARTIAL: True}


def trimmer(keeps_whole: Callable[[str, str], bool]) -> Trim:
    """``slim``, and a ModelDeployment that ``keeps_whole`` (namespace, name) refuses kept
    as its ``identity`` alone."""

    def trim(kind: str, body: dict[str, Any]) -> dict[str, Any]:
        if kind == KIND:
            meta = body.get("metadata") or {}
            if not keeps_whole(meta.get("namespace", ""), meta.get("name", "")):
                return identity(body)
        return slim(kind, body)

    return trim


def keep_every_body(namespace: str, name: str) -> bool:
    return True


def new_cache(keeps_whole: Callable[[str, str], bool] = keep_every_body) -> ObjectCache:
    """The operator's cache: children indexed by the name label of their ModelDeployment,
    every body slimmed as it is stored, and the ModelDeployments ``keeps_whole`` refuses
    kept as their identity alone."""
    return ObjectCache(owner_label=LABEL_NAME, owner_kind=KIND, trim=trimmer(keeps_whole))
