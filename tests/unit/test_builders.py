"""Golden and property tests of the pure child builders."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from modeldeploy.api.names import ANNOTATION_CONFIG_HASH
from modeldeploy.api.spec import ModelDeployment
from modeldeploy.children.deployment import BuildOptions, build_config_map, build_deployment
from modeldeploy.children.hpa import build_hpa
from modeldeploy.children.routing import build_network_policy, build_service
from modeldeploy.rollout.report import endpoints

from .objects import SAMPLE_SPEC, model_deployment

GOLDEN = Path(__file__).parent / "golden"


def assert_golden(name: str, manifest: Any) -> None:
    """Compare with tests/unit/golden/<name>.json; UPDATE_GOLDEN=1 rewrites it (review the diff)."""
    path = GOLDEN / f"{name}.json"
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"no golden file {path}: run with UPDATE_GOLDEN=1"
    assert json.loads(path.read_text()) == manifest


def test_deployment_golden(md: ModelDeployment) -> None:
    assert_golden("deployment", build_deployment(md, 3, 2, "stable"))


def test_service_golden(md: ModelDeployment) -> None:
    assert_golden("service", build_service(md))


def test_config_map_golden(md: ModelDeployment) -> None:
    assert_golden("configmap", build_config_map(md, 3))


def test_hpa_golden() -> None:
    spec = {**copy.deepcopy(SAMPLE_SPEC), "autoscaling": {"minReplicas": 2, "maxReplicas": 6}}
    del spec["replicas"]
    assert_golden("hpa", build_hpa(model_deployment(spec), 3))


def test_every_child_is_owned_and_labelled(md: ModelDeployment) -> None:
    children = [
        build_deployment(md, 3, 2, "stable"),
        build_service(md),
        build_config_map(md, 3),
    ]
    for child in children:
        meta = child["metadata"]
        assert meta["namespace"] == "ml"
        assert meta["labels"]["app.kubernetes.io/name"] == "mnist"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "modeldeploy"
        (owner,) = meta["ownerReferences"]
        assert owner == {
            "apiVersion": "serving.modeldeploy.dev/v1alpha1",
            "kind": "ModelDeployment",
            "name": "mnist",
            "uid": md.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
        assert "generateName" not in meta


def test_deployment_names_ports_probes_and_track(md: ModelDeployment) -> None:
    dep = build_deployment(md, 3, 2, "canary")
    assert dep["metadata"]["name"] == "mnist-v3"
    assert dep["metadata"]["labels"]["serving.modeldeploy.dev/track"] == "canary"
    template = dep["spec"]["template"]
    # The track stays off the pods so promotion does not restart them.
    assert "serving.modeldeploy.dev/track" not in template["metadata"]["labels"]
    assert template["metadata"]["labels"]["serving.modeldeploy.dev/version"] == "3"
    (serving,) = template["spec"]["containers"]
    assert {p["name"]: p["containerPort"] for p in serving["ports"]} == {"grpc": 8500, "http": 8501}
    assert serving["readinessProbe"]["httpGet"] == {"path": "/v1/models/mnist/versions/3", "port": "http"}
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["progressDeadlineSeconds"] == 300


def test_pods_are_locked_down(md: ModelDeployment) -> None:
    pod = build_deployment(md, 3, 2, "stable")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    for container in pod["containers"] + pod["initContainers"]:
        ctx = container["securityContext"]
        assert ctx["readOnlyRootFilesystem"] is True
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"] == {"drop": ["ALL"]}


def test_fetcher_gets_credentials_only_by_secret_reference(md: ModelDeployment) -> None:
    pod = build_deployment(md, 3, 2, "stable")["spec"]["template"]["spec"]
    (fetcher,) = pod["initContainers"]
    assert fetcher["args"] == ["s3://models/mnist", "3", "/models/mnist"]
    assert fetcher["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    # No credential values inline: the only variable is the size limit.
    assert fetcher["env"] == [{"name": "MODELDEPLOY_FETCH_MAX_BYTES", "value": str(10 << 30)}]
    assert fetcher["image"] == BuildOptions().fetcher_image
    custom = build_deployment(md, 3, 2, "stable", BuildOptions(fetcher_image="reg/f:1"))
    assert custom["spec"]["template"]["spec"]["initContainers"][0]["image"] == "reg/f:1"


def test_pvc_storage_is_mounted_not_fetched() -> None:
    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["model"] = {"storageUri": "pvc://model-store/team-a/mnist", "version": 3}
    pod = build_deployment(model_deployment(spec), 3, 1, "stable")["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert {"name": "model", "persistentVolumeClaim": {"claimName": "model-store", "readOnly": True}} in pod[
        "volumes"
    ]
    mount = pod["containers"][0]["volumeMounts"][0]
    assert mount == {
        "name": "model",
        "mountPath": "/models/mnist",
        "readOnly": True,
        "subPath": "team-a/mnist",
    }


def test_hpa_mode_leaves_replicas_to_the_hpa() -> None:
    spec = {**copy.deepcopy(SAMPLE_SPEC), "autoscaling": {"maxReplicas": 4}}
    del spec["replicas"]
    md = model_deployment(spec)
    assert "replicas" not in build_deployment(md, 3, None, "stable")["spec"]
    hpa = build_hpa(md, 3)
    assert hpa is not None
    assert hpa["spec"]["scaleTargetRef"]["name"] == "mnist-v3"
    assert build_hpa(model_deployment(), 3) is None


def test_config_map_holds_the_parsed_model_config(md: ModelDeployment) -> None:
    data = build_config_map(md, 3)["data"]
    parsed = text_format.Parse(data["models.config"], model_server_config_pb2.ModelServerConfig())
    assert parsed.model_config_list.config[0].model_version_policy.specific.versions == [3]
    assert "prometheus_config" in data["monitoring.config"]
    assert "max_batch_size { value: 16 }" in data["batching.config"]


def test_config_change_changes_the_pod_template_hash() -> None:
    base = build_deployment(model_deployment(), 3, 2, "stable")
    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["runtime"]["batching"] = {"maxBatchSize": 64}
    changed = build_deployment(model_deployment(spec), 3, 2, "stable")
    key = ANNOTATION_CONFIG_HASH
    assert (
        base["spec"]["template"]["metadata"]["annotations"][key]
        != changed["spec"]["template"]["metadata"]["annotations"][key]
    )


def test_builders_are_deterministic_and_do_not_mutate_input(md: ModelDeployment) -> None:
    before = md.model_dump()
    first = build_deployment(md, 3, 2, "stable")
    first["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "99"
    assert md.model_dump() == before
    assert build_deployment(md, 3, 2, "stable") != first
    assert build_deployment(md, 3, 2, "stable") == build_deployment(md, 3, 2, "stable")


@pytest.mark.parametrize("name", ["mnist", "resnet-50"])
def test_endpoints(name: str) -> None:
    found = endpoints(model_deployment(name=name))
    assert found.grpc == f"{name}.ml.svc:8500"
    assert found.rest == f"http://{name}.ml.svc:8501/v1/models/{name}"


def test_network_policy_admits_only_the_serving_ports() -> None:
    assert build_network_policy(model_deployment()) is None
    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["runtime"]["networkPolicy"] = True
    policy = build_network_policy(model_deployment(spec))
    assert policy is not None
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "mnist"
    (rule,) = policy["spec"]["ingress"]
    assert sorted(p["port"] for p in rule["ports"]) == [8500, 8501]
    assert "from" not in rule  # any client, but only these ports


def test_model_volume_and_fetcher_share_the_size_limit() -> None:
    from modeldeploy.api.fetch_protocol import MAX_BYTES_ENV

    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["runtime"]["modelVolumeSizeLimit"] = "512Mi"
    pod = build_deployment(model_deployment(spec), 3, 1, "stable")["spec"]["template"]["spec"]
    model = next(v for v in pod["volumes"] if v["name"] == "model")
    assert model["emptyDir"] == {"sizeLimit": "512Mi"}
    assert pod["initContainers"][0]["env"] == [{"name": MAX_BYTES_ENV, "value": str(512 << 20)}]


def test_runtime_placement_and_identity_reach_the_serving_pods() -> None:
    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["runtime"] = {
        "nodeSelector": {"pool": "gpu"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
            }
        ],
        "priorityClassName": "inference",
        "serviceAccountName": "mnist-reader",
        "podAnnotations": {"prometheus.io/scrape": "true"},
        "podLabels": {"team": "vision"},
        "env": [
            {"name": "TF_CPP_MIN_LOG_LEVEL", "value": "2"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
    }
    md = model_deployment(spec)
    dep = build_deployment(md, 3, 2, "stable")
    pod = dep["spec"]["template"]
    assert pod["spec"]["nodeSelector"] == {"pool": "gpu"}
    assert pod["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert "affinity" not in pod["spec"]  # absent unless given
    (spread,) = pod["spec"]["topologySpreadConstraints"]
    # A constraint spreads this version's pods: the selector is the version's labels.
    assert spread == {
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": dep["spec"]["selector"]["matchLabels"]},
    }
    assert pod["spec"]["priorityClassName"] == "inference"
    assert pod["spec"]["serviceAccountName"] == "mnist-reader"
    assert pod["spec"]["automountServiceAccountToken"] is False  # an identity, never an API token
    assert pod["metadata"]["labels"]["team"] == "vision"
    assert pod["metadata"]["labels"].items() >= dep["spec"]["selector"]["matchLabels"].items()
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert ANNOTATION_CONFIG_HASH in pod["metadata"]["annotations"]
    serving = pod["spec"]["containers"][0]
    assert serving["env"] == [
        {"name": "TF_CPP_MIN_LOG_LEVEL", "value": "2"},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]


def test_runtime_affinity_reaches_the_serving_pods_as_core_v1_affinity() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "gpu.example.com/memory-gb", "operator": "Gt", "values": ["15"]}
                        ]
                    }
                ]
            },
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 50,
                    "preference": {"matchExpressions": [{"key": "spot", "operator": "DoesNotExist"}]},
                }
            ],
        },
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "mnist"}},
                        "topologyKey": "kubernetes.io/hostname",
                    },
                }
            ]
        },
    }
    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["runtime"] = {"affinity": affinity}
    pod = build_deployment(model_deployment(spec), 3, 2, "stable")["spec"]["template"]
    # Exactly what was given: no empty lists or nulls for the terms left out.
    assert pod["spec"]["affinity"] == affinity


@pytest.mark.parametrize(
    ("runtime", "message"),
    [
        (
            {"env": [{"name": "MODELDEPLOY_X", "value": "1"}]},
            "names starting MODELDEPLOY_ are the operator's",
        ),
        ({"env": [{"name": "A", "value": "1"}, {"name": "A"}]}, "env names must be unique"),
        ({"podLabels": {"app.kubernetes.io/name": "x"}}, "must not set the operator's labels"),
        ({"podLabels": {"serving.modeldeploy.dev/track": "x"}}, "must not set the operator's labels"),
        ({"podLabels": {"bad key!": "x"}}, "keys must be qualified names"),
        (
            {"tolerations": [{"operator": "Exists", "value": "x"}]},
            "value must be empty when operator is Exists",
        ),
        ({"tolerations": [{"value": "x"}]}, "an empty key needs operator Exists"),
        ({"tolerations": [{"key": "k", "tolerationSeconds": 5}]}, "tolerationSeconds needs effect NoExecute"),
        (
            {"env": [{"name": "A", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
            "value and valueFrom are exclusive",
        ),
        ({"env": [{"name": "A", "valueFrom": {}}]}, "exactly one of secretKeyRef"),
        (
            {
                "topologySpreadConstraints": [
                    {"maxSkew": 1, "topologyKey": "z", "whenUnsatisfiable": "ScheduleAnyway", "minDomains": 2}
                ]
            },
            "minDomains needs whenUnsatisfiable DoNotSchedule",
        ),
        (
            {"podAnnotations": {"serving.modeldeploy.dev/config-hash": "x"}},
            "must not set the operator's annotations",
        ),
        (
            {
                "affinity": {
                    "nodeAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            {
                                "weight": 1,
                                "preference": {"matchExpressions": [{"key": "pool", "operator": "In"}]},
                            }
                        ]
                    }
                }
            },
            "operator In and NotIn need values",
        ),
        (
            {
                "affinity": {
                    "podAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": [
                            {
                                "labelSelector": {
                                    "matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]
                                },
                                "topologyKey": "kubernetes.io/hostname",
                            }
                        ]
                    }
                }
            },
            "operator Exists and DoesNotExist take no values",
        ),
        (
            {
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {"matchExpressions": [{"key": "gb", "operator": "Lt", "values": ["x"]}]}
                            ]
                        }
                    }
                }
            },
            "operator Gt and Lt need exactly one integer value",
        ),
    ],
)
def test_runtime_refuses_what_the_operator_owns(runtime: dict[str, Any], message: str) -> None:
    spec = {**copy.deepcopy(SAMPLE_SPEC), "runtime": runtime}
    with pytest.raises(ValueError, match=message):
        model_deployment(spec)
