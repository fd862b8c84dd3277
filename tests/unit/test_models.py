"""The spec models accept what the contract allows and name the field they refuse."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from modeldeploy.api.spec import ModelDeploymentSpec, Strategy, spec_error_message
from modeldeploy.api.status import ModelDeploymentStatus, Phase
from modeldeploy.api.times import parse_duration

from .objects import SAMPLE_SPEC


def with_changes(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(SAMPLE_SPEC)
    for dotted, value in changes.items():
        node = spec
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return spec


def test_sample_spec_parses_with_defaults() -> None:
    spec = ModelDeploymentSpec.model_validate(SAMPLE_SPEC)
    assert spec.model.version == 3
    assert spec.rollout.strategy is Strategy.IMMEDIATE
    assert spec.runtime.batching is not None
    assert spec.runtime.batching.max_batch_size == 16
    assert spec.runtime.batching.num_batch_threads == 4  # default filled
    assert spec.desired_replicas == 2
    assert spec.traffic.router.value == "Service"


def test_minimal_spec_defaults_to_canary_and_one_replica() -> None:
    spec = ModelDeploymentSpec.model_validate({"model": {"storageUri": "file:///m", "version": 1}})
    assert spec.rollout.strategy is Strategy.CANARY
    assert spec.desired_replicas == 1
    assert spec.runtime.image.startswith("tensorflow/serving:")
    assert not spec.runtime.image.endswith(":latest")


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (with_changes(model__version=0), "model.version"),
        (with_changes(model__storageUri="ftp://x/y"), "model.storageUri"),
        (with_changes(replicas=None, autoscaling={"minReplicas": 5, "maxReplicas": 2}), "minReplicas"),
        (with_changes(autoscaling={"maxReplicas": 3}), "replicas and autoscaling"),
        (with_changes(rollout__steps=[{"weight": 50}, {"weight": 10}]), "strictly increasing"),
        (with_changes(rollout__steps=[{"weight": 100}]), "rollout.steps.0.weight"),
        (with_changes(rollout__steps=[{"weight": 10, "pause": "soon"}]), "rollout.steps.0.pause"),
        (with_changes(rollout__strategy="BlueGreen"), "rollout.strategy"),
        (with_changes(traffic={"router": "GatewayAPI"}), "parentRefs"),
        (with_changes(model__colour="blue"), "model.colour"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        ModelDeploymentSpec.model_validate(spec)
    assert field in spec_error_message(excinfo.value)


def test_error_message_is_prefixed_with_spec() -> None:
    with pytest.raises(ValidationError) as excinfo:
        ModelDeploymentSpec.model_validate(with_changes(model__version=0))
    assert spec_error_message(excinfo.value).startswith("spec.model.version:")


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("1m30s", 90), ("250ms", 0.25), ("2h", 7200)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_parse_duration_refuses_garbage() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("10 minutes")


def test_status_round_trips_through_its_wire_form() -> None:
    status = ModelDeploymentStatus.model_validate(
        {"phase": "Ready", "stable": {"version": 2, "replicas": 2, "readyReplicas": 2}, "failedVersions": [3]}
    )
    assert status.phase is Phase.READY
    dumped = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert dumped["stable"]["readyReplicas"] == 2
    assert ModelDeploymentStatus.model_validate(dumped) == status


@pytest.mark.parametrize(
    ("rollout", "message"),
    [
        ({"steps": [{"weight": 10, "pause": "10m"}]}, "pause must be shorter than progressDeadlineSeconds"),
        ({"progressDeadlineSeconds": 30, "analysis": {"interval": "30s"}}, "interval must be shorter"),
    ],
)
def test_waits_at_least_as_long_as_the_deadline_are_refused(rollout: dict[str, Any], message: str) -> None:
    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["rollout"] = rollout
    with pytest.raises(ValidationError, match=message):
        ModelDeploymentSpec.model_validate(spec)


@pytest.mark.parametrize(
    ("address", "accepted"),
    [
        ("http://prometheus.monitoring:9090", True),
        ("https://example.com/prometheus", True),
        ("http://p:9090/?x=1", False),  # a query would cancel the API path appended to it
        ("http://p:9090/#", False),
        ("ftp://p", False),
    ],
)
def test_prometheus_address_is_a_base_url(address: str, accepted: bool) -> None:
    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["rollout"] = {"analysis": {"prometheus": {"address": address}}}
    if accepted:
        ModelDeploymentSpec.model_validate(spec)
    else:
        with pytest.raises(ValidationError, match="address"):
            ModelDeploymentSpec.model_validate(spec)


def test_urls_lose_their_secrets_before_anyone_sees_them() -> None:
    from modeldeploy.api.redaction import redact

    text = "cannot reach https://u:hunter2@b.example/m/1.tar.gz?X-Amz-Signature=s3cr3t&t=tok now"
    shown = redact(text)
    assert "hunter2" not in shown
    assert "s3cr3t" not in shown
    assert "tok" not in shown
    assert "https://***@b.example/m/1.tar.gz?<redacted> now" in shown
