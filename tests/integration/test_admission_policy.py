"""The sample ValidatingAdmissionPolicy of manifests/policies/ on the real API server: it pins
a ModelDeployment's serving image and ServiceAccount to the admin's lists and refuses a
Secret in the serving container's environment, and admits the shipped sample as it is."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
import yaml

from testbed.support.wait import wait_for

from .conftest import REPO, Cluster

pytestmark = pytest.mark.timeout(120)
POLICY = REPO / "manifests" / "policies" / "pin-runtime.yaml"


@pytest.fixture
def policy(cluster: Cluster, namespace: str) -> Iterator[None]:
    """The sample policy, bound to the test's namespace only (the suite's other tests run beside)."""
    policy_doc, binding = yaml.safe_load_all(POLICY.read_text())
    name = f"modeldeploy-pin-runtime-{namespace}"
    policy_doc["metadata"]["name"] = binding["metadata"]["name"] = binding["spec"]["policyName"] = name
    binding["spec"]["matchResources"]["namespaceSelector"] = {
        "matchLabels": {"kubernetes.io/metadata.name": namespace}
    }
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all([policy_doc, binding]))
    yield
    cluster.kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", name, check=False)


def sample(name: str, **runtime: Any) -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy(
        yaml.safe_load((REPO / "manifests" / "samples" / "mnist.yaml").read_text())
    )
    body["metadata"]["name"] = name
    if runtime:
        body["spec"]["runtime"] = runtime
    return body


def refusal(cluster: Cluster, namespace: str, body: dict[str, Any]) -> str | None:
    """The API server's message refusing ``body``, or None when it was admitted."""
    try:
        cluster.create_md(namespace, body)
    except kubernetes.client.ApiException as exc:
        if exc.status in (400, 403, 422):
            return str(exc.body)
        raise
    return None


@pytest.mark.usefixtures("policy")
def test_the_sample_policy_pins_image_service_account_and_secrets(cluster: Cluster, namespace: str) -> None:
    # The policy takes effect once the API server has compiled it: the first refusal says so.
    # Each try has a name of its own: one admitted before then must not answer the next.
    tries = itertools.count()

    def in_force() -> bool:
        message = refusal(cluster, namespace, sample(f"probe-{next(tries)}", image="evil.example/miner:1"))
        return message is not None and "is not an allowed serving image" in message

    wait_for(in_force, 30, what="the policy in force")
    message = refusal(cluster, namespace, sample("other-image", image="docker.io/someone/serving:2.18.0"))
    assert message is not None
    assert "is not an allowed serving image" in message
    message = refusal(cluster, namespace, sample("other-sa", serviceAccountName="cluster-admin-sa"))
    assert message is not None
    assert "is not an allowed ServiceAccount" in message
    secret_env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]
    message = refusal(cluster, namespace, sample("secret-env", env=secret_env))
    assert message is not None
    assert "may not read a Secret" in message
    # What the admin allows, and the sample as shipped (the default image), are admitted.
    assert refusal(cluster, namespace, sample("shipped")) is None
    allowed = sample(
        "allowed",
        image="registry.example.com/serving/tf:2.18.0",
        serviceAccountName="model-reader",
        env=[{"name": "LOG_LEVEL", "value": "info"}],
    )
    assert refusal(cluster, namespace, allowed) is None
