"""What every child shares: labels, owner reference, metadata."""

from __future__ import annotations

from typing import Any

from ..api.names import API_VERSION, KIND, LABEL_MANAGED_BY, LABEL_NAME, LABEL_VERSION, MANAGED_BY
from ..api.spec import ModelDeployment

Manifest = dict[str, Any]


def child_labels(md: ModelDeployment) -> dict[str, str]:
    return {LABEL_NAME: md.name, LABEL_MANAGED_BY: MANAGED_BY}


def version_labels(md: ModelDeployment, version: int) -> dict[str, str]:
    return {**child_labels(md), LABEL_VERSION: str(version)}


def with_labels(manifest: Manifest, labels: dict[str, str]) -> Manifest:
    """``manifest`` with ``labels`` added to its own and, for a Deployment, to its pod
    template's (so its pods carry them), never to its selector: a Deployment's selector is
    immutable, and a changed one would need the Deployment deleted. New dicts: a builder's
    labels dict may be a selector too."""
    if not labels:
        return manifest
    meta = manifest["metadata"]
    labelled = {**manifest, "metadata": {**meta, "labels": {**(meta.get("labels") or {}), **labels}}}
    template = (manifest.get("spec") or {}).get("template")
    if manifest.get("kind") == "Deployment" and template is not None:
        pod_meta = template.get("metadata") or {}
        pod_labels = {**(pod_meta.get("labels") or {}), **labels}
        labelled["spec"] = {
            **manifest["spec"],
            "template": {**template, "metadata": {**pod_meta, "labels": pod_labels}},
        }
    return labelled


def owner_reference(md: ModelDeployment) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": md.name,
        "uid": md.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(md: ModelDeployment, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": md.namespace,
        "labels": dict(labels),
        "ownerReferences": [owner_reference(md)],
    }
