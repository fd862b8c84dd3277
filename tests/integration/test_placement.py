"""spec.runtime's placement and identity on the real control plane: the
API server admits them, the scheduler and admission honour them, the pods carry them."""

from __future__ import annotations

from collections.abc import Iterator

import kubernetes
import pytest

from .conftest import Cluster, Operator, sample

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def priority_class(cluster: Cluster, namespace: str) -> Iterator[str]:
    scheduling = kubernetes.client.SchedulingV1Api(cluster.api)
    name = f"inference-{namespace}"
    scheduling.create_priority_class({"metadata": {"name": name}, "value": 1000})
    yield name
    scheduling.delete_priority_class(name)


def test_placement_and_identity_reach_the_running_pods(
    cluster: Cluster, namespace: str, operator: Operator, priority_class: str
) -> None:
    cluster.core.create_namespaced_service_account(namespace, {"metadata": {"name": "mnist-reader"}})
    runtime = {
        "nodeSelector": {"type": "kwok"},  # the suite's node
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway"}
        ],
        "affinity": {
            # The suite's kwok node carries type=kwok: a required term the scheduler must honour.
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "type", "operator": "In", "values": ["kwok"]}]}
                    ]
                }
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
        },
        "priorityClassName": priority_class,
        "serviceAccountName": "mnist-reader",
        "podAnnotations": {"example.com/owner": "vision-team"},
        "podLabels": {"team": "vision"},
        "env": [
            {"name": "TF_CPP_MIN_LOG_LEVEL", "value": "2"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
    }
    cluster.create_md(namespace, sample(runtime=runtime))
    cluster.wait_phase(namespace, "mnist", "Ready")
    pods = cluster.core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/name=mnist").items
    assert len(pods) == 2
    for pod in pods:
        assert pod.spec.node_selector == {"type": "kwok"}
        assert any(t.key == "nvidia.com/gpu" and t.operator == "Exists" for t in pod.spec.tolerations)
        required = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
        assert required.node_selector_terms[0].match_expressions[0].values == ["kwok"]
        (anti,) = pod.spec.affinity.pod_anti_affinity.preferred_during_scheduling_ignored_during_execution
        assert anti.pod_affinity_term.topology_key == "kubernetes.io/hostname"
        (spread,) = pod.spec.topology_spread_constraints
        assert spread.label_selector.match_labels["serving.modeldeploy.dev/version"] == "1"
        assert pod.spec.priority_class_name == priority_class
        assert pod.spec.priority == 1000  # admission resolved the class
        assert pod.spec.service_account_name == "mnist-reader"
        # An identity, never an API token: no projected token volume.
        assert not any(v.projected for v in pod.spec.volumes or [])
        assert pod.metadata.labels["team"] == "vision"
        assert pod.metadata.annotations["example.com/owner"] == "vision-team"
        env = {e.name: e for e in pod.spec.containers[0].env}
        assert env["TF_CPP_MIN_LOG_LEVEL"].value == "2"
        assert env["POD_NAME"].value_from.field_ref.field_path == "metadata.name"
