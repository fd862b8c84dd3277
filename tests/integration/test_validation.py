"""The API server itself refuses invalid manifests, naming the field (schema and CEL)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from .conftest import Cluster, sample

pytestmark = pytest.mark.timeout(60)


def changed(**spec: Any) -> dict[str, Any]:
    body = sample("invalid")
    merged = copy.deepcopy(body["spec"])
    for key, value in spec.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    body["spec"] = merged
    return body


CASES = [
    ("version below 1", changed(model={"storageUri": "s3://m/x", "version": 0}), "spec.model.version"),
    (
        "unknown storage scheme",
        changed(model={"storageUri": "ftp://m/x", "version": 1}),
        "spec.model.storageUri",
    ),
    ("missing model", changed(model=None), "spec.model"),
    (
        "replicas and autoscaling (CEL)",
        changed(autoscaling={"minReplicas": 1, "maxReplicas": 3}),
        "replicas and autoscaling are mutually exclusive",
    ),
    (
        "min above max (CEL)",
        changed(replicas=None, autoscaling={"minReplicas": 5, "maxReplicas": 2}),
        "spec.autoscaling.minReplicas",
    ),
    (
        "steps not increasing (CEL)",
        changed(rollout={"steps": [{"weight": 50}, {"weight": 20}]}),
        "spec.rollout.steps",
    ),
    ("weight out of range", changed(rollout={"steps": [{"weight": 100}]}), "spec.rollout.steps[0].weight"),
    ("unknown strategy", changed(rollout={"strategy": "BlueGreen"}), "spec.rollout.strategy"),
    (
        "bad pause duration",
        changed(rollout={"steps": [{"weight": 10, "pause": "a while"}]}),
        "spec.rollout.steps[0].pause",
    ),
    ("GatewayAPI without parents (CEL)", changed(traffic={"router": "GatewayAPI"}), "spec.traffic.gateway"),
    (
        "pause as long as the deadline (CEL)",
        changed(rollout={"progressDeadlineSeconds": 60, "steps": [{"weight": 10, "pause": "1m"}]}),
        "pause must be shorter than progressDeadlineSeconds",
    ),
    (
        "an env name the operator owns (CEL)",
        changed(runtime={"env": [{"name": "MODELDEPLOY_FETCH_MAX_BYTES", "value": "1"}]}),
        "env names starting MODELDEPLOY_ are the operator's",
    ),
    (
        "an env name given twice (CEL)",
        changed(runtime={"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}),
        "env names must be unique",
    ),
    (
        "a pod label the operator owns (CEL)",
        changed(runtime={"podLabels": {"serving.modeldeploy.dev/version": "9"}}),
        "spec.runtime.podLabels",
    ),
    (
        "a pod label that is not a label key (CEL)",
        changed(runtime={"podLabels": {"team a": "x"}}),
        "podLabels keys must be qualified names",
    ),
    (
        "a node affinity requirement In without values (CEL)",
        changed(
            runtime={
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In"}]}]
                        }
                    }
                }
            }
        ),
        "spec.runtime.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
        ".nodeSelectorTerms[0].matchExpressions[0].values",
    ),
    (
        "a node affinity Gt with a value that is not an integer (CEL)",
        changed(
            runtime={
                "affinity": {
                    "nodeAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            {
                                "weight": 10,
                                "preference": {
                                    "matchExpressions": [{"key": "gb", "operator": "Gt", "values": ["16Gi"]}]
                                },
                            }
                        ]
                    }
                }
            }
        ),
        "operator Gt and Lt need exactly one integer value",
    ),
    (
        "a pod anti-affinity term without a topologyKey (schema)",
        changed(
            runtime={
                "affinity": {
                    "podAntiAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": [
                            {"labelSelector": {"matchLabels": {"app": "x"}}}
                        ]
                    }
                }
            }
        ),
        "spec.runtime.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey",
    ),
    (
        "a toleration with operator Exists and a value (CEL)",
        changed(runtime={"tolerations": [{"key": "gpu", "operator": "Exists", "value": "yes"}]}),
        "spec.runtime.tolerations[0].value",
    ),
    (
        "tolerationSeconds without NoExecute (CEL)",
        changed(runtime={"tolerations": [{"key": "gpu", "tolerationSeconds": 30}]}),
        "spec.runtime.tolerations[0].tolerationSeconds",
    ),
    (
        "an env var with value and valueFrom (CEL)",
        changed(
            runtime={
                "env": [
                    {"name": "A", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
                ]
            }
        ),
        "spec.runtime.env[0].valueFrom",
    ),
    (
        "an env source that is none of the three (CEL)",
        changed(runtime={"env": [{"name": "A", "valueFrom": {}}]}),
        "valueFrom needs exactly one of secretKeyRef, configMapKeyRef, fieldRef",
    ),
    (
        "a pod field the downward API has not",
        changed(runtime={"env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.secret"}}}]}),
        "spec.runtime.env[0].valueFrom.fieldRef.fieldPath",
    ),
    (
        "the same spread twice (CEL)",
        changed(
            runtime={
                "topologySpreadConstraints": [
                    {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"},
                    {"maxSkew": 2, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"},
                ]
            }
        ),
        "spec.runtime.topologySpreadConstraints",
    ),
    (
        "a node selector value that is not a label value",
        changed(runtime={"nodeSelector": {"pool": "gpu pool"}}),
        "spec.runtime.nodeSelector.pool",
    ),
    (
        "a pod label value that is not a label value",
        changed(runtime={"podLabels": {"team": "a b"}}),
        "spec.runtime.podLabels.team",
    ),
    (
        "a pod annotation the operator owns (CEL)",
        changed(runtime={"podAnnotations": {"serving.modeldeploy.dev/config-hash": "x"}}),
        "spec.runtime.podAnnotations",
    ),
    (
        "interval longer than the deadline (CEL)",
        changed(rollout={"progressDeadlineSeconds": 20, "analysis": {"interval": "30s"}}),
        "spec.rollout.analysis.interval",
    ),
    (
        "a webhook URL that is not http(s)",
        changed(
            rollout={"analysis": {"webhooks": [{"name": "a", "url": "file:///etc/passwd", "at": "Step"}]}}
        ),
        "spec.rollout.analysis.webhooks[0].url",
    ),
    (
        "a webhook URL with credentials",
        changed(rollout={"analysis": {"webhooks": [{"name": "a", "url": "http://u:p@h/x", "at": "Step"}]}}),
        "spec.rollout.analysis.webhooks[0].url",
    ),
    (
        "an unknown webhook point",
        changed(rollout={"analysis": {"webhooks": [{"name": "a", "url": "http://h/x", "at": "Later"}]}}),
        "spec.rollout.analysis.webhooks[0].at",
    ),
    (
        "two webhooks of one name (CEL)",
        changed(
            rollout={
                "analysis": {
                    "webhooks": [
                        {"name": "a", "url": "http://h/x", "at": "Step"},
                        {"name": "a", "url": "http://h/y", "at": "PrePromotion"},
                    ]
                }
            }
        ),
        "webhooks names must be unique",
    ),
    (
        "a webhook timeout as long as the deadline (CEL)",
        changed(
            rollout={
                "progressDeadlineSeconds": 30,
                "analysis": {
                    "interval": "5s",
                    "webhooks": [{"name": "a", "url": "http://h/x", "at": "Step", "timeoutSeconds": 30}],
                },
            }
        ),
        "timeoutSeconds must be shorter than progressDeadlineSeconds",
    ),
    (
        "webhooks under strategy Immediate (CEL)",
        changed(
            rollout={
                "strategy": "Immediate",
                "analysis": {"webhooks": [{"name": "a", "url": "http://h/x", "at": "PrePromotion"}]},
            }
        ),
        "analysis.webhooks gate canaries",
    ),
]


def named(name: str, version: int) -> dict[str, Any]:
    body = sample(name)
    body["spec"]["model"]["version"] = version
    return body


def test_a_name_too_long_for_its_children_is_refused_at_admission(cluster: Cluster, namespace: str) -> None:
    # <name>-v<version> must be a DNS label: 63 characters. 58 + "-v" + "123" = 63 fits; 64 does not.
    cluster.create_md(namespace, named("n" * 58, 123))
    with pytest.raises(ApiException) as excinfo:
        cluster.create_md(namespace, named("m" * 58, 1234))
    assert excinfo.value.status == 422
    assert "metadata.name plus '-v' and spec.model.version must fit in 63 characters" in excinfo.value.body


@pytest.mark.parametrize(("body", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_manifest_is_rejected_naming_the_field(
    cluster: Cluster, namespace: str, body: dict[str, Any], field: str
) -> None:
    with pytest.raises(ApiException) as excinfo:
        cluster.create_md(namespace, body)
    assert excinfo.value.status == 422
    assert field in excinfo.value.body, excinfo.value.body


def test_valid_sample_is_accepted_with_defaults(cluster: Cluster, namespace: str) -> None:
    created = cluster.create_md(namespace, sample())
    assert created["spec"]["runtime"]["image"].startswith("tensorflow/serving:")
    assert created["spec"]["traffic"]["router"] == "Service"
