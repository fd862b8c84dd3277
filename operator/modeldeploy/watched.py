"""The kinds the operator watches into its cache: kopf's watches, the per-namespace
fill and the reconciler's drift check all read this one table."""

from __future__ import annotations

from dataclasses import dataclass

from . import models
from .builders import LABEL_MANAGED_BY, MANAGED_BY

# Children carry this label: the API server filters the watches, not the operator.
MANAGED_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"


@dataclass(frozen=True)
class Watched:
    """One kind the cache holds; ``group`` is "" for the core API."""

    kind: str
    group: str
    version: str
    plural: str
    selector: str

    @property
    def api_prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"


WATCHED = (
    Watched("ModelDeployment", models.GROUP, models.VERSION, models.PLURAL, ""),
    Watched("Deployment", "apps", "v1", "deployments", MANAGED_SELECTOR),
    Watched("Pod", "", "v1", "pods", MANAGED_SELECTOR),
    Watched("HorizontalPodAutoscaler", "autoscaling", "v2", "horizontalpodautoscalers", MANAGED_SELECTOR),
    Watched("NetworkPolicy", "networking.k8s.io", "v1", "networkpolicies", MANAGED_SELECTOR),
    Watched("HTTPRoute", "gateway.networking.k8s.io", "v1", "httproutes", MANAGED_SELECTOR),
)

# Children the operator applies and watches: a live one without the hash it applied drifted.
WATCHED_CHILD_KINDS = frozenset(w.kind for w in WATCHED if w.kind not in ("ModelDeployment", "Pod"))
