"""The one table of kinds the operator reads or writes: the API client resolves paths from
it, the watches are made from it (kopf's and the reflectors'), the drift check reads it.

Adding a child kind is one row here, one builder in ``build`` and one RBAC line.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..api import names


@dataclass(frozen=True)
class Kind:
    kind: str
    group: str  # "" for the core API
    version: str
    plural: str
    # Watched into the cache (a change queues the owning ModelDeployment's pass).
    watched: bool = False
    # Applied by the operator with its hash label: a live one without it drifted.
    child: bool = False
    # Watched only where it carries the managed-by label (the API server filters).
    managed: bool = False

    @property
    def labels(self) -> dict[str, str]:
        return {names.LABEL_MANAGED_BY: names.MANAGED_BY} if self.managed else {}

    @property
    def selector(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.labels.items())

    @property
    def api_prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        path = f"{self.api_prefix}/namespaces/{namespace}/{self.plural}"
        if name:
            path += f"/{name}"
        return f"{path}/{subresource}" if subresource else path


KINDS = (
    Kind(names.KIND, names.GROUP, names.VERSION, names.PLURAL, watched=True),
    Kind("Deployment", "apps", "v1", "deployments", watched=True, child=True, managed=True),
    Kind("Pod", "", "v1", "pods", watched=True, managed=True),
    Kind("ConfigMap", "", "v1", "configmaps", child=True),
    Kind("Service", "", "v1", "services", child=True),
    Kind(
        "HorizontalPodAutoscaler",
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        watched=True,
        child=True,
        managed=True,
    ),
    Kind(
        "NetworkPolicy", "networking.k8s.io", "v1", "networkpolicies", watched=True, child=True, managed=True
    ),
    Kind(
        "HTTPRoute", "gateway.networking.k8s.io", "v1", "httproutes", watched=True, child=True, managed=True
    ),
    Kind("Event", "", "v1", "events"),
)
BY_KIND = {k.kind: k for k in KINDS}
WATCHED = tuple(k for k in KINDS if k.watched)
# Children the operator applies and watches: the drift check compares their hash label.
WATCHED_CHILDREN = frozenset(k.kind for k in KINDS if k.watched and k.child)
