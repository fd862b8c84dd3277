"""Shared fixtures for unit tests: a valid ModelDeployment as a user would write it."""

from __future__ import annotations

import pytest

from modeldeploy.api.spec import ModelDeployment

from .objects import model_deployment


@pytest.fixture
def md() -> ModelDeployment:
    return model_deployment()
