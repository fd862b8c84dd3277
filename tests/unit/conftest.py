"""Shared fixtures for unit tests: a valid ModelDeployment as a user would write it."""

from __future__ import annotations

import pytest

from modeldeploy.api.spec import ModelDeployment

from .objects import SAMPLE_SPEC, model_deployment

# The names some test modules still import from here; the builders live in objects.py.
make_md = model_deployment
__all__ = ["SAMPLE_SPEC", "make_md"]


@pytest.fixture
def md() -> ModelDeployment:
    return model_deployment()
