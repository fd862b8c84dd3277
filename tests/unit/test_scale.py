"""The scale subresource's status: the serving version's pods and a selector that finds them."""

from __future__ import annotations

from modeldeploy.api.spec import ModelDeployment
from modeldeploy.api.status import VersionStatus
from modeldeploy.rollout.scale import scale_status


def resource(version: int) -> ModelDeployment:
    return ModelDeployment.from_body(
        {
            "metadata": {"name": "mnist", "namespace": "ml", "uid": "u1"},
            "spec": {"model": {"version": version, "storageUri": "s3://bucket/mnist"}, "replicas": 3},
        }
    )


def test_the_serving_versions_pods_are_reported_not_the_requested_ones() -> None:
    stable = VersionStatus(version=2, replicas=3, ready_replicas=2)
    replicas, selector = scale_status(resource(3), stable)
    assert replicas == 3
    assert selector == (
        "app.kubernetes.io/managed-by=modeldeploy,app.kubernetes.io/name=mnist,serving.modeldeploy.dev/version=2"
    )


def test_before_any_version_serves_the_requested_versions_pods_are_named() -> None:
    replicas, selector = scale_status(resource(1), None)
    assert replicas == 0
    assert selector.endswith("serving.modeldeploy.dev/version=1")
