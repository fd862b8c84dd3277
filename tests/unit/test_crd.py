"""The committed CRD is exactly what the models generate, and carries the contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Version",
        "Canary",
        "Weight",
        "Ready",
        "Phase",
        "Age",
    ]


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
    assert rollout["strategy"] == {"default": "Canary", "enum": ["Canary", "Immediate"], "type": "string"}
    assert rollout["progressDeadlineSeconds"]["default"] == 600
    assert spec["model"]["properties"]["version"]["minimum"] == 1
    assert spec["runtime"]["properties"]["resources"]["x-kubernetes-preserve-unknown-fields"] is True
