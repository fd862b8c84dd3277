"""The chart's values.schema.json describes every value of values.yaml, and the README's table is
generated from it (helm itself enforces the schema: tests/integration/test_helm_chart.py)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml

from hack import integrations

SCHEMA = json.loads(integrations.VALUES_SCHEMA.read_text())
VALUES = yaml.safe_load((integrations.CHART / "values.yaml").read_text())


def test_the_defaults_satisfy_the_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.validate(VALUES, SCHEMA)


def closed_objects(schema: dict[str, Any], path: str = "") -> list[str]:
    """Every object of the schema with properties of its own, as a dotted path."""
    found = [path] if "properties" in schema else []
    for key, prop in schema.get("properties", {}).items():
        found.extend(closed_objects(prop, f"{path}.{key}".lstrip(".")))
    return found


def test_every_object_with_known_keys_refuses_unknown_ones() -> None:
    for path in closed_objects(SCHEMA):
        node = SCHEMA
        for key in filter(None, path.split(".")):
            node = node["properties"][key]
        if node.get("type") == "object":
            assert node.get("additionalProperties") is False, path or "the top level"


@pytest.mark.parametrize(
    ("mistake", "named"),
    [({"replica": 3}, "replica"), ({"workers": "many"}, "many"), ({"image": {"tag": 5}}, "5")],
    ids=["unknown-key", "wrong-type", "numeric-tag"],
)
def test_the_common_mistakes_are_refused(mistake: dict[str, Any], named: str) -> None:
    values = {
        **VALUES,
        **{k: {**VALUES.get(k, {}), **v} if isinstance(v, dict) else v for k, v in mistake.items()},
    }
    with pytest.raises(jsonschema.ValidationError, match=named):
        jsonschema.validate(values, SCHEMA)


def test_the_readme_values_table_is_generated_from_the_schema() -> None:
    readme = integrations.CHART_README.read_text()
    assert readme == integrations.chart_readme(), (
        "charts/modeldeploy/README.md is stale: python -m hack.integrations"
    )
    for key in (
        "replicas",
        "leaderElection.enabled",
        "crds.keep",
        "serviceAccount.create",
        "priorityClassName",
    ):
        assert f"| `{key}` |" in readme
