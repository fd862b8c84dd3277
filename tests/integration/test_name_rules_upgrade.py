"""A resource created before the CRD refused its name (a dot, a leading digit, a ``-v<digits>``
end) stays in the cluster when the CRD with the name rules is applied: what the API server
still lets an admin and the operator do with it, as docs/install/upgrading.md says.

The CRD is a copy of ours in a group of its own, first without the name rules, then with
them, so the suite's own CRD is never changed."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from modeldeploy.api import crdgen
from testbed.cluster.localcluster import install_crds
from testbed.support.kube import kubectl_path

from .conftest import Cluster

pytestmark = pytest.mark.timeout(120)

GROUP = "legacy.modeldeploy.test"
PLURAL = "modeldeployments"
VERSION = "v1alpha1"
OLD_NAME = "fraud-v2"  # refused now: version 2 of resource "fraud" names its children so


def legacy_crd(with_name_rules: bool) -> dict[str, Any]:
    crd = copy.deepcopy(crdgen.build_crd())
    crd["metadata"]["name"] = f"{PLURAL}.{GROUP}"
    crd["spec"]["group"] = GROUP
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    if not with_name_rules:
        root["x-kubernetes-validations"] = [
            rule for rule in root["x-kubernetes-validations"] if rule not in crdgen.NAME_RULES
        ]
    return crd


def install(cluster: Cluster, crd: dict[str, Any], folder: Path, stage: str) -> None:
    path = folder / f"{stage}.yaml"
    path.write_text(yaml.safe_dump(crd))
    install_crds(kubectl_path(), cluster.kubeconfig, (path,), 30)


@pytest.fixture
def legacy_resource(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """OLD_NAME created under the CRD without the name rules, then the rules applied."""
    install(cluster, legacy_crd(with_name_rules=False), tmp_path, "before")
    try:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ModelDeployment",
            "metadata": {"name": OLD_NAME},
            "spec": {"model": {"storageUri": "s3://bucket/fraud", "version": 1}},
        }
        created = cluster.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        install(cluster, legacy_crd(with_name_rules=True), tmp_path, "after")
        yield created
    finally:
        cluster.kubectl("delete", "crd", f"{PLURAL}.{GROUP}", "--wait=false", check=False)


def refusal(call: Callable[[], object]) -> str:
    """The API server's message refusing ``call`` as invalid."""
    with pytest.raises(ApiException) as refused:
        call()
    assert refused.value.status == 422, refused.value.body
    message: str = json.loads(refused.value.body)["message"]
    return message


def test_an_existing_resource_with_a_refused_name_can_be_read_and_deleted_not_written(
    cluster: Cluster, namespace: str, legacy_resource: dict[str, Any]
) -> None:
    custom = cluster.custom

    def get() -> dict[str, Any]:
        found: dict[str, Any] = custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, OLD_NAME
        )
        return found

    assert get()["metadata"]["uid"] == legacy_resource["metadata"]["uid"], "the rules delete nothing"
    # The rule is on the whole object, so every write re-checks the name: a person's spec
    # edit, and the operator's status write too (it can no longer report or move a rollout).
    new_version = {"spec": {"model": {"version": 2}}}
    spec_refused = refusal(
        lambda: custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, OLD_NAME, new_version
        )
    )
    assert "-v<digits>" in spec_refused
    status = {"status": {"phase": "Degraded", "observedGeneration": 1}}
    status_refused = refusal(
        lambda: custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, OLD_NAME, status
        )
    )
    assert "-v<digits>" in status_refused
    # Deletion checks no schema: the way out is a copy under another name, then this delete.
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, OLD_NAME)
    with pytest.raises(ApiException) as gone:
        get()
    assert gone.value.status == 404
