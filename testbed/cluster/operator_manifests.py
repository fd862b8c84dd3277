"""manifests/ as `kubectl apply -k` installs them, fitted to the real node: the operator pod
is told the API server's address on the bridge (nothing here may dial the ``kubernetes``
Service's ClusterIP), and, for a test, confined to one namespace. Rendered with kubectl's
own kustomize, changed before anything is applied, so no unfitted pod ever starts."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
OPERATOR_NAMESPACE = "modeldeploy-system"


def rendered_manifests(kubectl: Path, manifests: Path = REPO / "manifests") -> list[dict[str, Any]]:
    """``manifests`` as `kubectl apply -k` would apply them, one dict per object."""
    rendered = subprocess.run(
        [str(kubectl), "kustomize", str(manifests)], check=True, capture_output=True, text=True
    ).stdout
    return [d for d in yaml.safe_load_all(rendered) if d]


def operator_container(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """The operator's container in the operator's Deployment among ``documents``."""
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def operator_manifests(kubectl: Path, env: list[dict[str, str]], namespace: str | None = None) -> str:
    documents = rendered_manifests(kubectl)
    container = operator_container(documents)
    container["env"] = [*container.get("env", []), *env]
    if namespace is not None:
        args = [a for a in container["args"] if a != "--all-namespaces"]
        container["args"] = [f"--namespace={namespace}", *args]
    return yaml.safe_dump_all(documents)
