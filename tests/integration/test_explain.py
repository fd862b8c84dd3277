"""What a user reads about the resource from kubectl alone: `kubectl explain` describes every
field (from the models' docstrings), the category lists it, -o wide says why."""

from __future__ import annotations

import pytest

from .conftest import Cluster, Operator, sample

pytestmark = pytest.mark.timeout(120)


def test_kubectl_explain_describes_nested_fields(cluster: Cluster) -> None:
    # kubectl wraps the text: compare with the white space folded.
    analysis = " ".join(cluster.kubectl("explain", "modeldeployment.spec.rollout.analysis").stdout.split())
    assert "Automated analysis of the canary; without it steps pass on time alone." in analysis
    assert "failureLimit <integer> Failed checks that roll the canary back." in analysis
    condition = " ".join(cluster.kubectl("explain", "md.status.conditions.type").stdout.split())
    assert "Reconciling, Stalled, StatusRecovered." in condition


def test_the_category_and_wide_columns(cluster: Cluster, namespace: str, operator: Operator) -> None:
    cluster.create_md(namespace, sample())
    cluster.wait_phase(namespace, "mnist", "Ready")
    listed = cluster.kubectl("get", "modeldeploy", "-n", namespace).stdout
    assert "mnist" in listed
    wide = cluster.kubectl("get", "md", "mnist", "-n", namespace, "-o", "wide").stdout
    header, row = wide.splitlines()[:2]
    assert "LAST CHECK" in header
    assert "MESSAGE" in header
    assert row.rstrip().endswith("version 1 serves")
