"""The committed CRD is exactly what the models generate, and carries the contract."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.api import crdgen

CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / crdgen.CRD_FILENAME


def _version() -> dict[str, Any]:
    crd = crdgen.build_crd()
    version: dict[str, Any] = crd["spec"]["versions"][0]
    return version


def test_committed_crd_matches_the_models() -> None:
    assert CRD_PATH.read_text() == crdgen.render_crd(), "crds/ drifted from the models: run `make crds`"


def test_names_and_short_names() -> None:
    crd = yaml.safe_load(CRD_PATH.read_text())
    assert crd["metadata"]["name"] == "modeldeployments.serving.modeldeploy.dev"
    assert crd["spec"]["names"]["shortNames"] == ["md", "mdep"]
    assert crd["spec"]["names"]["kind"] == "ModelDeployment"


def test_status_subresource_and_printer_columns() -> None:
    version = _version()
    assert version["subresources"]["status"] == {}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Version",
        "Serving",
        "Canary",
        "Weight",
        "Share",
        "Ready",
        "Phase",
        "Age",
        "Last Check",
        "Message",
    ]
    # The last two only with -o wide.
    assert [c.get("priority", 0) for c in version["additionalPrinterColumns"]] == [0] * 8 + [1, 1]
    serving = version["additionalPrinterColumns"][1]
    assert serving["jsonPath"] == ".status.stable.version"


def test_scale_subresource_reads_spec_replicas_and_the_reported_pods() -> None:
    version = _version()
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert status["replicas"]["type"] == "integer"
    assert status["selector"]["type"] == "string"


def test_schema_is_structural() -> None:
    """No $ref, anyOf or null types: the API server refuses non-structural schemas."""
    text = yaml.safe_dump(_version()["schema"])
    for forbidden in ("$ref", "anyOf", "type: 'null'", "title:"):
        assert forbidden not in text


def test_cel_rules_are_attached_where_they_belong() -> None:
    spec = _version()["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = {r["rule"] for r in spec["x-kubernetes-validations"]}
    assert "!(has(self.replicas) && has(self.autoscaling))" in rules
    autoscaling = spec["properties"]["autoscaling"]
    assert autoscaling["x-kubernetes-validations"][0]["rule"] == "self.minReplicas <= self.maxReplicas"
    steps_rule = spec["properties"]["rollout"]["x-kubernetes-validations"][0]
    assert "isSorted" in steps_rule["rule"]
    assert steps_rule["fieldPath"] == ".steps"
    assert spec["properties"]["rollout"]["properties"]["steps"]["maxItems"] == 20


def test_defaults_and_enums_reach_the_schema() -> None:
    spec = _version()["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    rollout = spec["rollout"]["properties"]
    strategy = {k: v for k, v in rollout["strategy"].items() if k != "description"}
    assert strategy == {"default": "Canary", "enum": ["Canary", "Immediate"], "type": "string"}
    assert rollout["progressDeadlineSeconds"]["default"] == 600
    assert spec["model"]["properties"]["version"]["minimum"] == 1
    assert spec["runtime"]["properties"]["resources"]["x-kubernetes-preserve-unknown-fields"] is True


def _undescribed(node: dict[str, Any], path: str) -> Iterator[str]:
    for key, sub in (node.get("properties") or {}).items():
        if not sub.get("description"):
            yield f"{path}.{key}"
        yield from _undescribed(sub, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        yield from _undescribed(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _undescribed(node["additionalProperties"], f"{path}{{}}")


def test_every_field_has_a_description_for_kubectl_explain() -> None:
    """A field added without a docstring (or description=) fails here, not in a user's terminal."""
    schema = _version()["schema"]["openAPIV3Schema"]
    # metadata: the API server allows nothing but its type (and explains it itself).
    assert list(_undescribed(schema, "")) == [".metadata"]


def _unbounded(node: dict[str, Any], path: str) -> Iterator[str]:
    """Every field of ``node`` whose size or value the schema leaves open: a string without
    maxLength (or enum), a list without maxItems, a map without maxProperties, a number
    without minimum and maximum."""
    kind = node.get("type")
    if kind == "string" and "maxLength" not in node and "enum" not in node:
        yield path
    if kind == "array" and "maxItems" not in node:
        yield path
    if kind in ("integer", "number") and not {"minimum", "maximum"} <= node.keys():
        yield path
    if kind == "object" and "properties" not in node and "maxProperties" not in node:
        yield path
    for key, sub in (node.get("properties") or {}).items():
        yield from _unbounded(sub, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        yield from _unbounded(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _unbounded(node["additionalProperties"], f"{path}{{}}")


def test_every_spec_field_is_bounded() -> None:
    """The API server estimates each CEL rule's cost from these bounds and stores whatever
    they admit: a field added without one fails here. Only runtime.resources' contents are
    open (core/v1 ResourceRequirements, checked by the API server on the Deployment)."""
    spec = _version()["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert list(_unbounded(spec, "spec")) == []


NAME_MATCH = re.compile(r"^(!?)self\.metadata\.name\.matches\('([^']*)'\)$")


def name_refused_by_schema(name: str) -> bool:
    """Whether the root's rules on metadata.name's form refuse ``name`` (CEL's matches is an
    RE2 search, which Python's re.search agrees with for these patterns)."""
    root = _version()["schema"]["openAPIV3Schema"]
    for rule in root["x-kubernetes-validations"]:
        match = NAME_MATCH.match(rule["rule"])
        if match is not None and bool(re.search(match.group(2), name)) == bool(match.group(1)):
            return True
    return False


@pytest.mark.parametrize(
    ("name", "refused"),
    [
        ("fraud", False),
        ("fraud-v2x", False),
        ("a-v2-b", False),
        ("fraud-v2", True),  # would share Service fraud-v2 with resource fraud at version 2
        ("fraud-v10", True),
        ("fraud.v2", True),  # a valid resource name, not a valid Service name
        ("2fraud", True),
        ("fraud-", True),
    ],
)
def test_names_that_would_break_or_share_a_child_are_refused(name: str, refused: bool) -> None:
    assert name_refused_by_schema(name) is refused
