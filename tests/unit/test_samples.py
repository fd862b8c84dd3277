"""Every sample manifest is a ModelDeployment the operator can build children for."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modeldeploy.api.spec import ModelDeployment
from modeldeploy.children.validation import spec_problem

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "manifests" / "samples").glob("*.yaml"))


def test_there_are_samples() -> None:
    assert {p.name for p in SAMPLES} >= {"mnist.yaml", "flowers-public.yaml"}


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_a_sample_parses_and_has_no_spec_problem(path: Path) -> None:
    body = yaml.safe_load(path.read_text())
    body["metadata"].update(namespace="default", uid="u", generation=1)
    md = ModelDeployment.from_body(body)
    assert spec_problem(md.spec) is None
