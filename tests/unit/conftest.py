"""Shared inputs for unit tests: valid specs as a user would write them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modeldeploy.api.spec import ModelDeployment, ModelDeploymentSpec

SAMPLE_SPEC: dict[str, Any] = {
    "model": {"storageUri": "s3://models/mnist", "version": 3, "storageSecretName": "s3-creds"},
    "runtime": {
        "resources": {"limits": {"cpu": "2", "memory": "2Gi", "nvidia.com/gpu": "1"}},
        "batching": {"maxBatchSize": 16},
        "args": ["--tensorflow_intra_op_parallelism=2"],
    },
    "replicas": 2,
    "rollout": {"strategy": "Immediate", "progressDeadlineSeconds": 300},
}


def make_md(spec: dict[str, Any] | None = None, name: str = "mnist", generation: int = 1) -> ModelDeployment:
    return ModelDeployment(
        name=name,
        namespace="ml",
        uid="1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        generation=generation,
        spec=ModelDeploymentSpec.model_validate(copy.deepcopy(spec or SAMPLE_SPEC)),
    )


@pytest.fixture
def md() -> ModelDeployment:
    return make_md()
