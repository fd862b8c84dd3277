"""The real fetcher image, built from serving_image/fetcher.Dockerfile by buildah, runs on
the real node against the real S3 server on the bridge: it lays out the
version for TF Serving, or ends with its one-line reason in the termination message."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.api.names import SERVING_UID
from testbed.support.s3server import CREDENTIALS
from testbed.support.wait import wait_for

from .conftest import BUCKET, NodeCluster

pytestmark = pytest.mark.timeout(600)


def fetch_pod(image: str, endpoint: str, version: int, credentials: bool = True) -> dict[str, Any]:
    env = [{"name": "AWS_ENDPOINT_URL", "value": endpoint}]
    if credentials:
        env += [{"name": k, "value": v} for k, v in CREDENTIALS.items()]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"fetch-{version}-{'creds' if credentials else 'anon'}"},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            # As the operator's serving pods run their fetcher: uid 1000, read-only root.
            "securityContext": {"runAsNonRoot": True, "runAsUser": SERVING_UID, "fsGroup": SERVING_UID},
            "containers": [
                {
                    "name": "fetch-model",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "args": [f"s3://{BUCKET}/mnist", str(version), "/models/mnist"],
                    "env": env,
                    "securityContext": {
                        "readOnlyRootFilesystem": True,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [
                        {"name": "model", "mountPath": "/models"},
                        {"name": "tmp", "mountPath": "/tmp"},
                    ],
                }
            ],
            "volumes": [{"name": "model", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
        },
    }


def ended(cluster: NodeCluster, namespace: str, name: str) -> tuple[str, int, str]:
    def done() -> tuple[str, int, str] | None:
        p = cluster.core.read_namespaced_pod(name, namespace)
        if p.status.phase not in ("Succeeded", "Failed"):
            return None
        terminated = p.status.container_statuses[0].state.terminated
        return p.status.phase, terminated.exit_code, (terminated.message or "").strip()

    result: tuple[str, int, str] = wait_for(done, 120, what=f"pod {name} ended")
    return result


def test_the_fetcher_image_fetches_a_padded_version_folder_from_s3(
    node_cluster: NodeCluster, node_namespace: str, bridge_s3: str, fetcher_image: str
) -> None:
    body = fetch_pod(fetcher_image, bridge_s3, 8)
    node_cluster.core.create_namespaced_pod(node_namespace, body)
    phase, code, message = ended(node_cluster, node_namespace, body["metadata"]["name"])
    assert (phase, code) == ("Succeeded", 0), message
    assert message.startswith(f"fetched version 8 of s3://{BUCKET}/mnist from folder 00000008: sha256:"), (
        message
    )


@pytest.mark.parametrize(
    ("version", "credentials", "reason"),
    [
        (7, True, f"fetch failed: version 7 not found: s3://{BUCKET}/mnist/7/ does not exist"),
        (6, True, "fetch failed: not a SavedModel: version 6 has no saved_model.pb"),
        (8, False, "read anonymously (no credentials given): the bucket is not public"),
    ],
)
def test_a_failed_fetch_ends_with_its_one_line_reason(
    node_cluster: NodeCluster,
    node_namespace: str,
    bridge_s3: str,
    fetcher_image: str,
    version: int,
    credentials: bool,
    reason: str,
) -> None:
    body = fetch_pod(fetcher_image, bridge_s3, version, credentials)
    node_cluster.core.create_namespaced_pod(node_namespace, body)
    phase, code, message = ended(node_cluster, node_namespace, body["metadata"]["name"])
    assert (phase, code) == ("Failed", 1), message
    assert reason in message, message
    assert len(message.splitlines()) == 1, message
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in message


def test_wrong_credentials_end_with_the_secret_to_check_and_never_the_key(
    node_cluster: NodeCluster, node_namespace: str, bridge_s3_refusing_keys: str, fetcher_image: str
) -> None:
    body = fetch_pod(fetcher_image, bridge_s3_refusing_keys, 8)
    node_cluster.core.create_namespaced_pod(node_namespace, body)
    phase, code, message = ended(node_cluster, node_namespace, body["metadata"]["name"])
    assert (phase, code) == ("Failed", 1), message
    assert f"access denied to s3://{BUCKET}/mnist/" in message, message
    assert "(InvalidAccessKeyId): check the credentials in spec.model.storageSecretName" in message, message
    assert len(message.splitlines()) == 1, message
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in message
    assert CREDENTIALS["AWS_ACCESS_KEY_ID"] not in message
