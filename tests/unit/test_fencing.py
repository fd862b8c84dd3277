"""Writes from a replica that no longer leads must not land: leadership is asked before
each child write and each model gate, and the writes carry the version the pass saw, so
the API server refuses them (409) when another replica wrote since."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeldeploy.api.names import KIND
from modeldeploy.control.apply import Applier
from modeldeploy.control.kinds import new_cache
from modeldeploy.kube.transport import ApiError
from modeldeploy.kube.workqueue import RetryLaterError

from .test_reconcile import UID, FakeKube, deployment, pod, reconciler, resource
from .test_writes import recording_server, writes_to

pytestmark = pytest.mark.timeout(30)


def test_the_model_gate_is_conditional_on_the_pod_version_the_pass_saw(tmp_path: Path) -> None:
    with recording_server() as (port, received):
        writes_to(port, tmp_path).open_model_gate("ml", "mnist-v3-a", "available", "77")
    [(_, _, _, body)] = received
    assert body["metadata"]["resourceVersion"] == "77"


def test_a_gate_refused_because_the_pod_changed_is_left_to_the_next_pass(tmp_path: Path) -> None:
    with recording_server(status=409) as (port, _):
        assert writes_to(port, tmp_path).open_model_gate("ml", "mnist-v3-a", "available", "77") is None
    with recording_server(status=409) as (port, _), pytest.raises(ApiError):
        writes_to(port, tmp_path).open_model_gate("ml", "mnist-v3-a", "available")  # not fenced: not ours


def test_a_pass_passes_the_pods_version_to_its_gate() -> None:
    cache = new_cache()
    cache.upsert(KIND, resource())
    ready = pod("mnist-v1-a", 1, "127.1.0.9")
    cache.upsert("Pod", ready)
    rec, kube, _, _ = reconciler(cache)
    rec.reconcile("ml", "mnist")
    assert kube.gates_fenced_with == [ready["metadata"]["resourceVersion"]]


def test_a_replica_that_stops_leading_during_the_gate_probes_sets_no_gate() -> None:
    """The probes before a gate take seconds; leadership is asked again after them."""
    cache = new_cache()
    cache.upsert(KIND, resource())
    cache.upsert("Pod", pod("mnist-v1-a", 1, "127.1.0.9"))
    rec, kube, asked, _ = reconciler(cache)
    rec.leading = lambda: False
    assert rec.reconcile("ml", "mnist") is None
    assert asked, "the probe ran and answered AVAILABLE"
    assert [c for c in kube.calls if c[0] in ("gate", "close", "status")] == []


class ChildKube(FakeKube):
    """FakeKube recording the version each apply was conditional on; refuses on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.versions: list[str | None] = []
        self.refuse: int | None = None

    def apply(self, manifest: dict[str, object], field_manager: str = "modeldeploy") -> dict[str, object]:
        self.versions.append(manifest["metadata"].get("resourceVersion"))  # type: ignore[attr-defined]
        if self.refuse is not None:
            raise ApiError(status=self.refuse, reason="Conflict")
        return super().apply(manifest, field_manager)  # type: ignore[arg-type]


def test_an_update_of_a_cached_child_is_conditional_on_its_version_and_a_conflict_retries() -> None:
    cache = new_cache()
    live = deployment(1, replicas=1, serving=1)
    live["metadata"]["resourceVersion"] = "31"
    live["metadata"]["labels"]["serving.modeldeploy.dev/applied-hash"] = "stale"
    owner = [{"kind": "ModelDeployment", "name": "mnist", "uid": UID, "controller": True}]
    live["metadata"]["ownerReferences"] = owner
    cache.upsert("Deployment", live)
    kube = ChildKube()
    applier = Applier(kube, cache)  # type: ignore[arg-type]
    name = live["metadata"]["name"]
    meta = {"name": name, "namespace": "ml", "ownerReferences": owner}
    manifest = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta}
    applier._apply_if_changed(("ml", "mnist"), dict(manifest))
    assert kube.versions == ["31"]
    kube.refuse = 409  # a replica leading now wrote the Deployment since
    applier.forget("ml", "mnist")
    with pytest.raises(RetryLaterError, match="changed since this pass read it"):
        applier._apply_if_changed(("ml", "mnist"), dict(manifest, spec={"replicas": 2}))


def test_a_child_the_cache_lacks_is_created_unconditionally() -> None:
    kube = ChildKube()
    applier = Applier(kube, new_cache())  # type: ignore[arg-type]
    manifest = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "mnist", "namespace": "ml"}}
    applier._apply_if_changed(("ml", "mnist"), manifest)
    assert kube.versions == [None]


def test_a_replica_that_stops_leading_mid_apply_writes_no_further_child() -> None:
    cache = new_cache()
    cache.upsert(KIND, resource())
    rec, kube, _, _ = reconciler(cache)
    answers = iter([True, True])  # the pass's own check, then the first child's only
    leading = lambda: next(answers, False)  # noqa: E731
    rec.leading = leading
    rec.applier.leading = leading
    assert rec.reconcile("ml", "mnist") is None
    applied = [c for c in kube.calls if c[0] in ("apply", "delete")]
    assert len(applied) == 1, applied
    assert not [c for c in kube.calls if c[0] == "status"]
