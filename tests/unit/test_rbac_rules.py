"""The requests the operator's own code sends, checked against the ClusterRole of
manifests/rbac.yaml: a verb the code uses and the manifest lacks is a 403 in a cluster."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from modeldeploy.api.names import GROUP
from modeldeploy.control.kinds import BY_KIND, new_cache
from modeldeploy.control.watches import relist
from modeldeploy.control.writes import Writes
from modeldeploy.kube.client import Kube
from modeldeploy.kube.transport import Response

from .objects import model_deployment_body

RBAC = Path(__file__).resolve().parents[2] / "manifests" / "rbac.yaml"


class RecordingApi:
    """Answers like an API server holding one ModelDeployment, recording (verb, group, resource)."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, str]] = []

    def request(self, method: str, path: str, *, query: Sequence[tuple[str, Any]] = (), **_: Any) -> Response:
        self.asked.append(verb_and_resource(method, path, dict(query)))
        body = model_deployment_body("mnist", resource_version="7")
        if method == "GET" and path.endswith("modeldeployments"):
            body = {"metadata": {"resourceVersion": "7"}, "items": [body]}
        return Response(200, {}, json.dumps(body).encode())


def verb_and_resource(method: str, path: str, query: dict[str, Any]) -> tuple[str, str, str]:
    """An API request as RBAC sees it."""
    parts = path.strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    if rest[:1] == ["namespaces"]:
        rest = rest[2:]
    resource = "/".join([rest[0], *rest[2:]])
    named = len(rest) > 1
    verbs = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}
    verb = verbs.get(method) or ("watch" if query.get("watch") else "get" if named else "list")
    return verb, group, resource


def granted() -> set[tuple[str, str, str]]:
    documents = [d for d in yaml.safe_load_all(RBAC.read_text()) if d and d["kind"] == "ClusterRole"]
    return {
        (verb, group, resource)
        for rule in documents[0]["rules"]
        for verb in rule["verbs"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }


def test_the_relist_and_the_conflict_recovery_send_only_what_the_manifest_grants() -> None:
    api = RecordingApi()
    kube = Kube(api, BY_KIND)  # type: ignore[arg-type]
    writes = Writes(kube)
    # A relist finding a version the cache lacks reads its body; a refused status write
    # (409) reads the resource again; the gate and the status are patched.
    relist(kube, new_cache(), "ml")
    writes.read_model_deployment("ml", "mnist")
    writes.patch_status("ml", "mnist", {"phase": "Ready"}, "7")
    writes.open_model_gate("ml", "mnist-v1-a", "available")
    assert ("get", GROUP, "modeldeployments") in api.asked
    assert set(api.asked) - granted() == set()
