"""What the scale subresource reads from status: the serving version's pod count and selector. Pure."""

from __future__ import annotations

from ..api.names import LABEL_MANAGED_BY, LABEL_NAME, LABEL_VERSION, MANAGED_BY
from ..api.spec import ModelDeployment
from ..api.status import VersionStatus


def scale_status(md: ModelDeployment, stable: VersionStatus | None) -> tuple[int, str]:
    """(status.replicas, status.selector) for ``kubectl scale`` and a HorizontalPodAutoscaler.

    The serving version's pods, not the canary's: spec.replicas sizes the stable version, so
    an HPA compares it with those pods and averages its metrics over them. Before any version
    serves, the selector names the requested version's pods (none yet, zero replicas).
    """
    version = stable.version if stable is not None else md.spec.model.version
    labels = {LABEL_NAME: md.name, LABEL_MANAGED_BY: MANAGED_BY, LABEL_VERSION: str(version)}
    selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
    return (stable.replicas if stable is not None else 0), selector
