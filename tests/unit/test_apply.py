"""The apply engine's hash: where it is written and read. No cluster; the integration suite
checks what a Deployment's generation does when only its labels change."""

from __future__ import annotations

import copy
from typing import Any

from modeldeploy.api.names import ANNOTATION_APPLIED_HASH, LABEL_APPLIED_HASH
from modeldeploy.api.spec import ModelDeployment
from modeldeploy.children.deployment import build_deployment
from modeldeploy.children.desired import DesiredState
from modeldeploy.children.routing import build_service
from modeldeploy.control.apply import Applier, manifest_hash
from modeldeploy.control.kinds import new_cache
from modeldeploy.kube.cache import ObjectCache


class RecordingKube:
    """Answers an apply with what was sent, as the API server would (plus a resourceVersion)."""

    def __init__(self) -> None:
        self.applied: list[dict[str, Any]] = []

    def apply(self, manifest: dict[str, Any], field_manager: str = "modeldeploy") -> dict[str, Any]:
        self.applied.append(copy.deepcopy(manifest))
        return {**copy.deepcopy(manifest), "metadata": {**manifest["metadata"], "resourceVersion": "9"}}


def applier() -> tuple[Applier, RecordingKube, ObjectCache]:
    kube, cache = RecordingKube(), new_cache()
    return Applier(kube, cache), kube, cache  # type: ignore[arg-type]


def test_the_hash_is_a_label_so_a_deployments_generation_does_not_move_with_it(
    md: ModelDeployment,
) -> None:
    # A Deployment's generation moves with its annotations, not its labels: a promotion,
    # which only relabels the canary, must not make it "not rolled out" for a moment.
    apply, kube, _ = applier()
    deployment = build_deployment(md, 3, 2, "canary")
    digest = manifest_hash(deployment)
    apply.ensure(md, "first", lambda: DesiredState(children=[deployment]))
    sent = kube.applied[0]["metadata"]
    assert sent["labels"][LABEL_APPLIED_HASH] == digest
    assert ANNOTATION_APPLIED_HASH not in (sent.get("annotations") or {})


def test_the_hash_label_stays_off_every_selector(md: ModelDeployment) -> None:
    apply, kube, _ = applier()
    service = build_service(md)
    apply.ensure(md, "first", lambda: DesiredState(children=[service]))
    sent = kube.applied[0]
    assert LABEL_APPLIED_HASH in sent["metadata"]["labels"]
    assert LABEL_APPLIED_HASH not in sent["spec"]["selector"]


def test_a_child_an_older_operator_annotated_with_the_same_hash_is_not_applied_again(
    md: ModelDeployment,
) -> None:
    apply, kube, cache = applier()
    deployment = build_deployment(md, 3, 2, "stable")
    live = copy.deepcopy(deployment)
    live["metadata"]["annotations"] = {ANNOTATION_APPLIED_HASH: manifest_hash(deployment)}
    live["metadata"]["resourceVersion"] = "5"
    cache.upsert("Deployment", live)
    apply.ensure(md, "first", lambda: DesiredState(children=[copy.deepcopy(deployment)]))
    assert kube.applied == [], "an upgrade rewrote a child whose manifest did not change"
    # A real change is applied, and the hash moves to the label.
    changed = build_deployment(md, 3, 4, "stable")
    apply.ensure(md, "second", lambda: DesiredState(children=[changed]))
    assert [m["spec"]["replicas"] for m in kube.applied] == [4]
    assert kube.applied[0]["metadata"]["labels"][LABEL_APPLIED_HASH] == manifest_hash(
        build_deployment(md, 3, 4, "stable")
    )
