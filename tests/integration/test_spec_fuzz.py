"""Spec fuzzing: every ModelDeployment the API server accepts gets children the
API server accepts, or a status that says InvalidSpec; the pass never crashes. Names
that would break a child (not a Service name) or share one with another resource
(``<name>-v<n>``) are refused at admission, and a namesake another owner holds is not taken.

Specs come from the CRD's own schema (tests.support.schema_strategy), near and across
every bound it states. Each is created for real; one reconcile pass then runs in this
process with every write sent as ``dryRun=All``: the API server validates and admits the
children, the events and the status, and stores none of them.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from kubernetes.client.exceptions import ApiException

from modeldeploy.api.names import (
    API_VERSION,
    GROUP,
    HANDOVER_FIELD_MANAGER,
    KIND,
    PLURAL,
    RESOURCE_NAME_PATTERN,
    VERSION,
    VERSION_SUFFIX_PATTERN,
)
from modeldeploy.control.apply import Applier
from modeldeploy.control.kinds import BY_KIND, new_cache
from modeldeploy.control.reconcile import Reconciler
from modeldeploy.control.writes import Writes
from modeldeploy.kube.client import Kube, load_client_config
from modeldeploy.kube.transport import ApiClient
from modeldeploy.kube.workqueue import RetryLaterError
from testbed.cluster.localcluster import MODELDEPLOYMENT_CRD
from tests.support.schema_strategy import from_schema

from .conftest import Cluster

pytestmark = pytest.mark.timeout(900)
# Derandomized: CI runs the same examples every time. Raise it to explore further locally.
EXAMPLES = int(os.environ.get("MODELDEPLOY_FUZZ_EXAMPLES", "150"))
MINIMAL: dict[str, Any] = {"model": {"storageUri": "s3://bucket/mnist", "version": 1}}
# What admission refused, by field: printed with -s, to see where the examples go.
REFUSALS: Counter[str] = Counter()
SERVICE_NAMES = st.from_regex(r"\A[a-z]([a-z0-9-]{0,70}[a-z0-9])?\Z")
REFUSED_NAMES = st.one_of(
    # Object names the API server takes for most kinds but not for a Service: dots, a
    # leading digit.
    st.from_regex(r"\A[a-z0-9]([a-z0-9.-]{0,40}[a-z0-9])?\Z"),
    # Names that end like a version's children.
    st.builds(lambda base, version: f"{base}-v{version}", SERVICE_NAMES, st.integers(0, 10**6)),
)
# One name in six from those: most examples are about their spec.
NAMES = st.integers(0, 5).flatmap(lambda pick: REFUSED_NAMES if pick == 0 else SERVICE_NAMES)


def name_must_be_refused(name: str) -> bool:
    return not re.search(RESOURCE_NAME_PATTERN, name) or bool(re.search(VERSION_SUFFIX_PATTERN, name))


class DryRunKube(Kube):
    """Every write goes with ``dryRun=All``; the status the pass wrote is kept for the test."""

    def __init__(self, api: ApiClient) -> None:
        super().__init__(api, BY_KIND)
        self.statuses: list[dict[str, Any]] = []
        self.writes: list[tuple[str, str]] = []  # (method, path) of every write

    def writes_to(self, plural: str, name: str) -> list[tuple[str, str]]:
        return [w for w in self.writes if w[1].endswith(f"/{plural}/{name}")]

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, Any]] | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
        accept: str = "application/json",
    ) -> Any:
        if ("fieldManager", HANDOVER_FIELD_MANAGER) in (query or []):
            # The hand-over applies only spec.replicas to the Deployment the apply before
            # it made; under dryRun that Deployment does not exist. Its one field, a count,
            # was admitted with the full manifest.
            return {}
        if method != "GET":
            query = [*(query or []), ("dryRun", "All")]
            self.writes.append((method, path))
        result = super()._call(method, path, body, query, content_type, timeout, accept)
        if method == "PATCH" and path.endswith("/status"):
            self.statuses.append(result.get("status") or {})
        return result


def spec_schema() -> dict[str, Any]:
    crd = yaml.safe_load(MODELDEPLOYMENT_CRD.read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def create(
    cluster: Cluster, namespace: str, body: dict[str, Any]
) -> tuple[dict[str, Any] | None, ApiException | None]:
    """The created object, or the API server's refusal."""
    try:
        created: dict[str, Any] = cluster.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, body
        )
    except ApiException as exc:
        return None, exc
    return created, None


def test_every_accepted_spec_gets_accepted_children_or_an_invalid_spec_status(
    cluster: Cluster, namespace: str
) -> None:
    outcomes: Counter[str] = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(name=NAMES, spec=from_schema(spec_schema()))
    # Cases fuzzing found once, kept so every run tries them.
    @example(name="a", spec={**MINIMAL, "runtime": {"args": ["emoji 🙂", "DEL \x7f"]}})
    @example(name="fraud.v2", spec=MINIMAL)
    @example(name="2fraud", spec=MINIMAL)
    @example(name="fraud-v2", spec=MINIMAL)
    @example(name="a", spec={**MINIMAL, "runtime": {"resources": {"kind": {}}}})
    @example(
        name="a",
        spec={**MINIMAL, "runtime": {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}},
    )
    @example(name="a", spec={**MINIMAL, "runtime": {"resources": {"requests": {"foo": "1"}}}})
    @example(name="a", spec={**MINIMAL, "runtime": {"image": " padded "}})
    @example(name="a", spec={"model": {**MINIMAL["model"], "storageSecretName": ":"}})
    @example(
        name="a",
        spec={
            **MINIMAL,
            "traffic": {"router": "GatewayAPI", "gateway": {"parentRefs": [{"name": "gw", "requests": {}}]}},
        },
    )
    def one_spec(name: str, spec: dict[str, Any]) -> None:
        body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": spec}
        created, refusal = create(cluster, namespace, body)
        if name_must_be_refused(name):
            assert refusal is not None, f"a resource named {name!r} was admitted"
        if refusal is not None:
            assert refusal.status in (400, 422), f"refused with {refusal.status}: {refusal.body}"
            message = json.loads(refusal.body)["message"]
            assert "spec" in message or "metadata.name" in message, f"the refusal names no field: {message}"
            outcomes["refused at admission"] += 1
            REFUSALS[message[message.find("spec.") :][:50]] += 1
            return
        assert created is not None
        try:
            kube = DryRunKube(load_client_config(4, str(cluster.kubeconfig)))
            cache = new_cache()
            cache.upsert(KIND, created)
            try:
                Reconciler(Writes(kube), cache, Applier(kube, cache)).reconcile(namespace, name)
            except RetryLaterError as exc:
                raise AssertionError(f"a child was refused: {exc}\nspec: {json.dumps(spec)}") from None
            assert kube.statuses, "the pass wrote a status"
            conditions = kube.statuses[-1].get("conditions") or []
            invalid = any(c.get("reason") == "InvalidSpec" for c in conditions)
            outcomes["InvalidSpec status" if invalid else "children accepted"] += 1
        finally:
            cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

    one_spec()
    print(f"spec fuzzing outcomes: {dict(outcomes)}", REFUSALS.most_common(30))
    # The strategy must reach all three outcomes, or it tests less than it claims.
    assert outcomes["refused at admission"] > 0, outcomes
    assert outcomes["children accepted"] >= EXAMPLES // 10, outcomes


GATEWAY_SPEC: dict[str, Any] = {
    **MINIMAL,
    "traffic": {"router": "GatewayAPI", "gateway": {"parentRefs": [{"name": "gw"}]}},
}


def test_two_resources_never_share_a_child(cluster: Cluster, namespace: str) -> None:
    """A GatewayAPI resource ``<a>`` at version n owns Service ``<a>-v<n>``, the name of
    resource ``<a>-v<n>``'s own Service: the second name is refused, whichever comes first."""

    @settings(max_examples=max(EXAMPLES // 10, 5), deadline=None, derandomize=True, database=None)
    @given(base=SERVICE_NAMES.filter(lambda n: len(n) <= 40), version=st.integers(1, 10**6))
    def one_pair(base: str, version: int) -> None:
        if re.search(VERSION_SUFFIX_PATTERN, base):
            return  # refused on its own: the fuzzer above covers it
        first = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": base},
            "spec": {**GATEWAY_SPEC, "model": {**MINIMAL["model"], "version": version}},
        }
        second = {**first, "metadata": {"name": f"{base}-v{version}"}, "spec": GATEWAY_SPEC}
        _, refusal = create(cluster, namespace, first)
        assert refusal is None, refusal
        try:
            _, refusal = create(cluster, namespace, second)
            assert refusal is not None, (
                f"{base} at version {version} and {base}-v{version} were both admitted"
            )
            assert "metadata.name" in json.loads(refusal.body)["message"]
        finally:
            cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, base)

    one_pair()


def test_a_resource_named_like_another_owners_service_does_not_take_it(
    cluster: Cluster, namespace: str
) -> None:
    service = {
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }
    cluster.core.create_namespaced_service(namespace, service)
    body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "web"}, "spec": MINIMAL}
    created, refusal = create(cluster, namespace, body)
    assert created is not None, refusal
    kube = DryRunKube(load_client_config(4, str(cluster.kubeconfig)))
    cache = new_cache()
    cache.upsert(KIND, created)
    try:
        with pytest.raises(RetryLaterError, match="Service web exists and is not managed by modeldeploy"):
            Reconciler(Writes(kube), cache, Applier(kube, cache)).reconcile(namespace, "web")
        degraded = next(c for c in kube.statuses[-1]["conditions"] if c["type"] == "Degraded")
        assert degraded["reason"] == "ChildOwnedByAnother"
        assert not kube.writes_to("services", "web")
    finally:
        cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "web")


# Names a second resource may take beside ``<base>`` at version n: its children's names and
# names that start or end like them.
SUFFIXES = st.sampled_from(("", "-v{n}", "-v{n}-config", "-config", "-v", "-v{n}0", "-x-v{n}", "-v{n}-x"))


CHILD_PLURALS = {
    "deployments",
    "services",
    "configmaps",
    "httproutes",
    "horizontalpodautoscalers",
    "networkpolicies",
}


def written_children(kube: DryRunKube) -> set[tuple[str, str]]:
    """(plural, name) of every child a pass wrote (not the resource's own status or events)."""
    return {
        (parts[-2], parts[-1]) for _, path in kube.writes if (parts := path.split("/"))[-2] in CHILD_PLURALS
    }


def test_two_resources_drawn_together_never_write_the_same_child(cluster: Cluster, namespace: str) -> None:
    """Two resources at once, the second named from the first's name and version: either
    admission refuses one, or the children their passes write share no name."""

    @settings(max_examples=max(EXAMPLES // 5, 10), deadline=None, derandomize=True, database=None)
    @given(
        base=SERVICE_NAMES.filter(lambda n: len(n) <= 30),
        version=st.integers(1, 99),
        other_version=st.integers(1, 99),
        suffix=SUFFIXES,
        gateway=st.booleans(),
    )
    def one_pair(base: str, version: int, other_version: int, suffix: str, gateway: bool) -> None:
        spec = GATEWAY_SPEC if gateway else MINIMAL
        names = (base, base + suffix.format(n=version))
        if names[0] == names[1]:
            return
        bodies = [
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "metadata": {"name": name},
                "spec": {**spec, "model": {**MINIMAL["model"], "version": v}},
            }
            for name, v in zip(names, (version, other_version), strict=True)
        ]
        created = [create(cluster, namespace, body)[0] for body in bodies]
        try:
            if None in created:
                return  # admission refused one: nothing can be shared
            children = []
            for body in created:
                assert body is not None
                kube = DryRunKube(load_client_config(4, str(cluster.kubeconfig)))
                cache = new_cache()
                cache.upsert(KIND, body)
                Reconciler(Writes(kube), cache, Applier(kube, cache)).reconcile(
                    namespace, body["metadata"]["name"]
                )
                children.append(written_children(kube))
            assert children[0], "the first resource's pass wrote its children"
            assert not children[0] & children[1], f"{names} share {children[0] & children[1]}"
        finally:
            for body in created:
                if body is not None:
                    name = body["metadata"]["name"]
                    cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

    one_pair()
