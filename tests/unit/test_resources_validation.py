"""Container resources the API server would refuse are an InvalidSpec, named by field: a
free-form resources map would otherwise reach the Deployment and be refused only there."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from modeldeploy.api.quantity import parse_quantity
from modeldeploy.children.validation import resources_problem


@pytest.mark.parametrize(
    ("value", "exact"),
    [("100m", "0.1"), ("2Gi", str(2 << 30)), (1, "1"), ("1e3", "1000"), ("1.5", "1.5"), ("500u", "0.0005")],
)
def test_quantities_read_as_the_api_server_reads_them(value: object, exact: str) -> None:
    assert parse_quantity(value) == Decimal(exact)


@pytest.mark.parametrize("value", ["", "1.5.2", "Gi", "1 Gi", True, None, [], "NaN", "1e99999999999"])
def test_what_is_not_a_quantity_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="quantit"):
        parse_quantity(value)


@pytest.mark.parametrize(
    "resources",
    [
        {},
        {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        {"limits": {"nvidia.com/gpu": 1}},
        {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": 1}},
        {"requests": {"hugepages-2Mi": "4Mi", "memory": "1Gi"}, "limits": {"hugepages-2Mi": "4Mi"}},
    ],
)
def test_resources_the_api_server_takes_pass(resources: dict[str, Any]) -> None:
    assert resources_problem(resources) is None


@pytest.mark.parametrize(
    ("resources", "field"),
    [
        ({"kind": {}}, "spec.runtime.resources: unknown key"),
        ({"requests": []}, "spec.runtime.resources.requests:"),
        ({"requests": {"foo": "1"}}, "spec.runtime.resources.requests[foo]"),
        ({"limits": {"kubernetes.io/foo": "1"}}, "spec.runtime.resources.limits[kubernetes.io/foo]"),
        ({"requests": {"cpu": "lots"}}, "spec.runtime.resources.requests[cpu]"),
        ({"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}, "spec.runtime.resources.requests[cpu]"),
        ({"requests": {"nvidia.com/gpu": "1"}}, "spec.runtime.resources.limits[nvidia.com/gpu]"),
        ({"limits": {"nvidia.com/gpu": "500m"}}, "spec.runtime.resources.limits[nvidia.com/gpu]"),
        ({"limits": {"hugepages-2Mi": "4Mi"}}, "spec.runtime.resources: huge pages"),
    ],
)
def test_resources_the_api_server_would_refuse_name_their_field(
    resources: dict[str, Any], field: str
) -> None:
    problem = resources_problem(resources)
    assert problem is not None
    assert problem.startswith(field), problem
