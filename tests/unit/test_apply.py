"""The apply engine's hash: where it is written and read. No cluster; the integration suite
checks what a Deployment's generation does when only its labels change."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modeldeploy.api.names import ANNOTATION_APPLIED_HASH, LABEL_APPLIED_HASH
from modeldeploy.api.spec import ModelDeployment
from modeldeploy.children.deployment import build_config_map, build_deployment
from modeldeploy.children.desired import DesiredState
from modeldeploy.children.routing import build_service
from modeldeploy.control.apply import Applier, ChildOwnedByAnotherError, holds_all, manifest_hash
from modeldeploy.control.kinds import new_cache
from modeldeploy.kube.cache import ObjectCache
from modeldeploy.kube.transport import ApiError


class RecordingKube:
    """Answers an apply with what was sent, as the API server would (plus a resourceVersion);
    a get and a delete with what ``existing`` holds."""

    def __init__(self) -> None:
        self.applied: list[dict[str, Any]] = []
        self.existing: dict[tuple[str, str], dict[str, Any]] = {}  # (kind, name) -> live object
        self.reads: list[tuple[str, str]] = []
        self.deleted: list[tuple[str, str, dict[str, str] | None]] = []
        self.version_reads: list[tuple[str, str]] = []
        self.versions = 8  # the last resourceVersion handed out

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads.append((kind, name))
        return copy.deepcopy(self.existing.get((kind, name)))

    def delete(
        self, kind: str, namespace: str, name: str, preconditions: dict[str, str] | None = None
    ) -> bool:
        self.deleted.append((kind, name, preconditions))
        return self.existing.pop((kind, name), None) is not None

    def version(self, kind: str, namespace: str, name: str) -> str | None:
        self.version_reads.append((kind, name))
        live = self.existing.get((kind, name))
        return None if live is None else str(live["metadata"].get("resourceVersion", ""))

    def apply(self, manifest: dict[str, Any], field_manager: str = "modeldeploy") -> dict[str, Any]:
        self.applied.append(copy.deepcopy(manifest))
        self.versions += 1
        result = {
            **copy.deepcopy(manifest),
            "metadata": {**manifest["metadata"], "resourceVersion": str(self.versions)},
        }
        self.existing[(manifest["kind"], manifest["metadata"]["name"])] = copy.deepcopy(result)
        return result


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


def controlled_by(holder_uid: str, kind: str, name: str, **meta: Any) -> dict[str, Any]:
    ref = {"apiVersion": "v1", "kind": "X", "name": "holder", "uid": holder_uid, "controller": True}
    return {"kind": kind, "metadata": {"name": name, "namespace": "ml", "ownerReferences": [ref], **meta}}


def test_a_child_another_owner_controls_is_refused_and_not_written(md: ModelDeployment) -> None:
    apply, kube, _ = applier()
    kube.existing[("Service", md.name)] = controlled_by("another-uid", "Service", md.name, uid="s-1")
    refusal = f"Service {md.name} exists and is controlled by X holder"
    with pytest.raises(ChildOwnedByAnotherError, match=refusal):
        apply.ensure(md, "first", lambda: DesiredState(children=[build_service(md)]))
    assert kube.applied == []


def test_a_child_nobody_controls_is_taken_only_when_labelled_as_ours(md: ModelDeployment) -> None:
    apply, kube, _ = applier()
    foreign = {"kind": "Service", "metadata": {"name": md.name, "namespace": "ml", "labels": {"app": "web"}}}
    kube.existing[("Service", md.name)] = foreign
    with pytest.raises(ChildOwnedByAnotherError, match="is not managed by modeldeploy"):
        apply.ensure(md, "first", lambda: DesiredState(children=[build_service(md)]))
    # One the resource orphaned (its labels, no controller) is adopted.
    orphan = build_service(md)
    del orphan["metadata"]["ownerReferences"]
    kube.existing[("Service", md.name)] = orphan
    apply.ensure(md, "second", lambda: DesiredState(children=[build_service(md)]))
    assert [m["metadata"]["name"] for m in kube.applied] == [md.name]


def test_a_child_is_looked_at_once_not_at_every_resync(md: ModelDeployment) -> None:
    apply, kube, _ = applier()
    apply.ensure(md, "first", lambda: DesiredState(children=[build_service(md)]))
    kube.existing[("Service", md.name)]["metadata"]["resourceVersion"] = "20"  # edited by hand
    apply.recheck()
    apply.ensure(md, "first", lambda: DesiredState(children=[build_service(md)]))
    assert len(kube.applied) == 2
    assert kube.reads == [("Service", md.name)]


def test_a_resync_reads_the_unwatched_childrens_versions_and_writes_nothing_unchanged(
    md: ModelDeployment,
) -> None:
    apply, kube, _ = applier()
    children = [build_service(md), build_config_map(md, 1), build_deployment(md, 1, 1, "stable")]
    apply.ensure(md, "first", lambda: DesiredState(children=copy.deepcopy(children)))
    assert len(kube.applied) == 3
    apply.recheck()
    apply.ensure(md, "first", lambda: DesiredState(children=copy.deepcopy(children)))
    # Reads of the two unwatched children alone (the Deployment's watch reports it), no write.
    assert len(kube.applied) == 3
    assert sorted(kube.version_reads) == [("ConfigMap", f"{md.name}-v1-config"), ("Service", md.name)]
    # Without a resync asked for, a pass reads nothing.
    apply.ensure(md, "first", lambda: DesiredState(children=copy.deepcopy(children)))
    assert len(kube.version_reads) == 2


@pytest.mark.parametrize("drift", ["edited", "deleted"])
def test_a_resync_applies_again_an_unwatched_child_changed_since_our_apply(
    md: ModelDeployment, drift: str
) -> None:
    apply, kube, _ = applier()
    children = [build_service(md), build_config_map(md, 1)]
    apply.ensure(md, "first", lambda: DesiredState(children=copy.deepcopy(children)))
    config = ("ConfigMap", f"{md.name}-v1-config")
    if drift == "edited":
        kube.existing[config]["data"] = {"models.config": "changed by hand"}
        kube.existing[config]["metadata"]["resourceVersion"] = "30"
    else:
        del kube.existing[config]
    apply.recheck()
    apply.ensure(md, "first", lambda: DesiredState(children=copy.deepcopy(children)))
    assert [(m["kind"], m["metadata"]["name"]) for m in kube.applied[2:]] == [config]
    assert kube.existing[config]["data"] == children[1]["data"]
    # Converged again: the next resync writes nothing.
    apply.recheck()
    apply.ensure(md, "first", lambda: DesiredState(children=copy.deepcopy(children)))
    assert len(kube.applied) == 3


def test_a_delete_names_the_uid_and_spares_another_owners_namesake(md: ModelDeployment) -> None:
    apply, kube, _ = applier()
    ours = build_config_map(md, 1)
    ours["metadata"].update(uid="cm-1", resourceVersion="4")
    kube.existing[("ConfigMap", ours["metadata"]["name"])] = ours
    taken = controlled_by("another-uid", "ConfigMap", f"{md.name}-v2-config", uid="cm-2")
    kube.existing[("ConfigMap", taken["metadata"]["name"])] = taken
    deletions = [("ConfigMap", f"{md.name}-v1-config"), ("ConfigMap", f"{md.name}-v2-config")]
    apply.ensure(md, "first", lambda: DesiredState(deletions=deletions))
    assert kube.deleted == [("ConfigMap", f"{md.name}-v1-config", {"uid": "cm-1", "resourceVersion": "4"})]
    assert ("ConfigMap", f"{md.name}-v2-config") in kube.existing


def test_a_watched_child_is_deleted_by_the_uid_the_cache_holds(md: ModelDeployment) -> None:
    # The cache's resourceVersion of a Deployment lags its status updates: uid only.
    apply, kube, cache = applier()
    live = build_deployment(md, 2, 1, "stable")
    live["metadata"].update(uid="d-2", resourceVersion="8")
    cache.upsert("Deployment", live)
    kube.existing[("Deployment", f"{md.name}-v2")] = live
    apply.ensure(md, "first", lambda: DesiredState(deletions=[("Deployment", f"{md.name}-v2")]))
    assert kube.deleted == [("Deployment", f"{md.name}-v2", {"uid": "d-2"})]
    assert kube.reads == []


def test_a_restarted_operator_takes_unwatched_children_as_applied_without_writing(
    md: ModelDeployment,
) -> None:
    """A new process (a restart, a shard taken over) has no memo: the unwatched children it
    reads to claim them, if they carry this manifest's hash and every field of it, are
    taken as applied; one edited by hand since is applied again."""
    apply, kube, _ = applier()
    children = [build_service(md), build_config_map(md, 1)]
    apply.ensure(md, "first", lambda: DesiredState(children=copy.deepcopy(children)))
    assert len(kube.applied) == 2
    config = ("ConfigMap", f"{md.name}-v1-config")
    kube.existing[config]["metadata"]["resourceVersion"] = "40"
    kube.existing[config]["data"] = {**kube.existing[config]["data"], "models.config": "edited by hand"}
    restarted = Applier(kube, new_cache())  # type: ignore[arg-type]
    restarted.ensure(md, "first", lambda: DesiredState(children=copy.deepcopy(children)))
    assert [(m["kind"], m["metadata"]["name"]) for m in kube.applied[2:]] == [config]
    # The Service was taken as it was: a resync finds its version unchanged and writes nothing.
    restarted.recheck()
    restarted.ensure(md, "first", lambda: DesiredState(children=copy.deepcopy(children)))
    assert len(kube.applied) == 3


def test_holds_all_ignores_the_servers_defaults_and_nothing_else() -> None:
    desired = {"spec": {"ports": [{"port": 8500, "name": "grpc"}], "selector": {"app": "m"}}}
    live = {
        "spec": {
            "ports": [{"port": 8500, "name": "grpc", "protocol": "TCP", "targetPort": 8500}],
            "selector": {"app": "m"},
            "clusterIP": "10.0.0.1",
        }
    }
    assert holds_all(live, desired)
    assert not holds_all(live, {"spec": {"ports": [{"port": 8501, "name": "grpc"}]}})
    assert not holds_all(live, {"spec": {"ports": [{"port": 8500}, {"port": 8501}]}})  # one port gone
    assert not holds_all(live, {"spec": {"type": "NodePort"}})
    assert not holds_all({"data": None}, {"data": {"a": "b"}})


class TimedOutKube(RecordingKube):
    """Answers every apply with the 504 of a request that waited past its timeout."""

    def apply(self, manifest: dict[str, Any], field_manager: str = "modeldeploy") -> dict[str, Any]:
        raise ApiError(status=504, reason="Gateway Timeout")


def test_service_applies_are_timed_answered_or_not_and_no_other_kind(md: ModelDeployment) -> None:
    timed: list[tuple[float, float]] = []
    kube, cache = RecordingKube(), new_cache()
    apply = Applier(kube, cache, service_timed=lambda started, seconds: timed.append((started, seconds)))  # type: ignore[arg-type]
    children = [build_config_map(md, 3), build_service(md), build_deployment(md, 3, 2, "stable")]
    apply.ensure(md, "first", lambda: DesiredState(children=children))
    assert len(kube.applied) == 3
    assert len(timed) == 1, "the bound was told of applies other than the Service's"
    assert timed[0][1] >= 0.0
    failing = Applier(TimedOutKube(), new_cache(), service_timed=lambda *when: timed.append(when))  # type: ignore[arg-type]
    with pytest.raises(ApiError):
        failing.ensure(md, "first", lambda: DesiredState(children=[build_service(md)]))
    assert len(timed) == 2, "a Service apply that failed was not timed"
