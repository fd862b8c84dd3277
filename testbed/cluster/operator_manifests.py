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


def operator_manifests(kubectl: Path, env: list[dict[str, str]], namespace: str | None = None) -> str:
    rendered = subprocess.run(
        [str(kubectl), "kustomize", str(REPO / "manifests")], check=True, capture_output=True, text=True
    ).stdout
    documents: list[dict[str, Any]] = [d for d in yaml.safe_load_all(rendered) if d]
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [*container.get("env", []), *env]
    if namespace is not None:
        args = [a for a in container["args"] if a != "--all-namespaces"]
        container["args"] = [f"--namespace={namespace}", *args]
    return yaml.safe_dump_all(documents)
