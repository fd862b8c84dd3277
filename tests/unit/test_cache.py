"""The object cache keeps the newest version of each object and recognises echoes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from modeldeploy.api.names import KIND, LABEL_NAME
from modeldeploy.control.apply import owns_replicas
from modeldeploy.control.kinds import new_cache
from modeldeploy.control.watches import keep_identity_of
from modeldeploy.kube.cache import MAX_REMOVED_STAMPS, PARTIAL, is_partial

from .objects import deployment, model_deployment_body, pod, pod_status


def mnist_pod(version: str, phase: str = "Running") -> dict[str, Any]:
    return pod("mnist-v1-a", resource_version=version, labels={LABEL_NAME: "mnist"}, status=pod_status(phase))


def test_the_same_version_again_is_an_echo() -> None:
    cache = new_cache()
    assert cache.upsert("Pod", mnist_pod("10"))
    # The watch delivering what a write-through already stored: no pass needed.
    assert not cache.upsert("Pod", mnist_pod("10"))


def test_a_newer_version_replaces_and_an_older_one_is_kept_out_but_still_news() -> None:
    cache = new_cache()
    cache.upsert("Pod", mnist_pod("10", "Pending"))
    assert cache.upsert("Pod", mnist_pod("12", "Running"))
    assert cache.get("Pod", "ml", "mnist-v1-a")["status"]["phase"] == "Running"  # type: ignore[index]
    # An event older than a write-through: not stored, yet reported, so the change it
    # carried (merged into the newer body we hold) still gets a pass.
    assert cache.upsert("Pod", mnist_pod("11", "Pending"))
    assert cache.get("Pod", "ml", "mnist-v1-a")["status"]["phase"] == "Running"  # type: ignore[index]
    assert [p["metadata"]["name"] for p in cache.labelled("Pod", "ml", "mnist")] == ["mnist-v1-a"]


def test_a_fresh_list_drops_ghosts_and_wins_over_newer_looking_versions() -> None:
    cache = new_cache()

    def owned_pod(name: str, owner: str, rv: str) -> dict[str, Any]:
        return pod(name, resource_version=rv, labels={LABEL_NAME: owner})

    cache.upsert("Pod", owned_pod("a-1", "a", "900"))
    cache.upsert("Pod", owned_pod("b-1", "b", "901"))  # deleted during a watch gap: a ghost
    cache.upsert("Pod", owned_pod("c-1", "c", "950"))
    cache.upsert("Pod", pod("x", namespace="other", resource_version="1"))
    # After an etcd restore versions restart low: the list is still the truth.
    touched = cache.replace(
        "Pod", "ml", [owned_pod("a-1", "a", "900"), owned_pod("c-1", "c", "12")], cache.mark()
    )
    assert touched == {"b", "c"}
    assert cache.get("Pod", "ml", "b-1") is None
    assert cache.labelled("Pod", "ml", "b") == []
    assert cache.get("Pod", "ml", "c-1")["metadata"]["resourceVersion"] == "12"  # type: ignore[index]
    assert cache.get("Pod", "other", "x") is not None  # other namespaces untouched
    assert (
        cache.replace("Pod", "ml", [owned_pod("a-1", "a", "900"), owned_pod("c-1", "c", "12")], cache.mark())
        == set()
    )


def test_a_list_taken_before_a_change_does_not_undo_it() -> None:
    """The relist races the workers: a status written (and stored through) while the list
    was on its way is newer than the list, and so is what the watches said meanwhile."""
    cache = new_cache()
    md = model_deployment_body(resource_version="10", status={"stable": 1})
    cache.upsert("ModelDeployment", md)
    cache.upsert("Pod", mnist_pod("20"))
    since = cache.mark()
    listed_md = md  # what the list returned: taken before the writes below
    promoted = model_deployment_body(resource_version="30", status={"stable": 2})
    cache.upsert("ModelDeployment", promoted)  # a worker's write-through
    cache.remove("Pod", "ml", "mnist-v1-a")  # a DELETED event
    born = pod("mnist-v2-b", resource_version="31")
    cache.upsert("Pod", born)  # an ADDED event

    assert cache.replace("ModelDeployment", "ml", [listed_md], since) == set()
    assert cache.get("ModelDeployment", "ml", "mnist")["status"] == {"stable": 2}  # type: ignore[index]
    assert cache.replace("Pod", "ml", [mnist_pod("20")], since) == set()
    assert cache.get("Pod", "ml", "mnist-v1-a") is None
    assert cache.get("Pod", "ml", "mnist-v2-b") is not None
    # The next list, taken after those changes, is the truth again.
    assert cache.replace("Pod", "ml", [], cache.mark()) == set()  # mnist-v2-b has no owner label
    assert cache.get("Pod", "ml", "mnist-v2-b") is None


def deployment_with_managers(ours_owns_replicas: bool) -> dict[str, Any]:
    ours_spec: dict[str, Any] = {"f:template": {"f:spec": {}}}
    if ours_owns_replicas:
        ours_spec["f:replicas"] = {}
    return deployment(
        "mnist-v1",
        resource_version="5",
        labels={LABEL_NAME: "mnist"},
        managed_fields=[
            {"manager": "modeldeploy", "operation": "Apply", "fieldsV1": {"f:spec": ours_spec}},
            {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:status": {}}},
            {
                "manager": "modeldeploy-handover",
                "operation": "Apply",
                "fieldsV1": {"f:spec": {"f:replicas": {}}},
            },
        ],
        spec={"replicas": 2, "template": {"spec": {"containers": [{"name": "tensorflow-serving"}]}}},
        status={"readyReplicas": 2},
    )


def test_the_cache_keeps_no_managed_fields_but_the_replicas_ownership_the_applier_reads() -> None:
    cache = new_cache()
    for owned in (True, False):
        body = deployment_with_managers(owned)
        cache.upsert("Deployment", body)
        held = cache.get("Deployment", "ml", "mnist-v1")
        assert held is not None
        assert owns_replicas(held) is owned is owns_replicas(body)
        assert [m["manager"] for m in held["metadata"]["managedFields"]] == ["modeldeploy"]
        assert held["spec"] == {"replicas": 2}  # the template is never read: only the hash annotation
        assert held["status"] is body["status"]  # no deep copy
        assert len(body["metadata"]["managedFields"]) == 3  # the watch's own body is not changed
        cache.remove("Deployment", "ml", "mnist-v1")


def test_the_cache_keeps_of_a_pod_what_observe_reads() -> None:
    gate = [{"conditionType": "serving.modeldeploy.dev/model-available"}]
    body = pod(
        "p",
        resource_version="1",
        managed_fields=[{}],
        spec={
            "containers": [{"name": "tensorflow-serving", "args": ["--port=8500"]}],
            "readinessGates": gate,
        },
        status=pod_status(ip="127.0.0.5"),
    )
    cache = new_cache()
    cache.upsert("Pod", body)
    held = cache.get("Pod", "ml", "p")
    assert held is not None
    assert "managedFields" not in held["metadata"]
    assert held["spec"] == {"readinessGates": gate}
    assert held["status"] is body["status"]
    assert "containers" in body["spec"]  # the watch's own body is not changed


class InterleavingLock:
    """The cache's lock, letting another writer in right after its ``turn``-th release:
    what another thread may do between two of the cache's own steps."""

    def __init__(self, turn: int, write: Callable[[], object]) -> None:
        self._lock = threading.Lock()
        self._turn = turn
        self._write: Callable[[], object] | None = write

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
        self._turn -= 1
        if self._turn == 0 and self._write is not None:
            write, self._write = self._write, None
            write()


@pytest.mark.parametrize("turn", range(1, 8))
def test_a_write_landing_while_a_list_is_stored_is_never_undone(turn: int) -> None:
    cache = new_cache()
    cache.upsert("ModelDeployment", model_deployment_body(resource_version="10", status={"stable": 1}))
    since = cache.mark()
    listed = model_deployment_body(resource_version="50", status={"stable": 1})
    written = model_deployment_body(resource_version="60", status={"stable": 2})
    cache._lock = InterleavingLock(turn, lambda: cache.upsert("ModelDeployment", written))  # type: ignore[assignment]
    cache.replace("ModelDeployment", "ml", [listed], since)
    for _ in range(8):
        cache.mark()  # lets a write not let in yet land
    assert cache.get("ModelDeployment", "ml", "mnist")["status"] == {"stable": 2}  # type: ignore[index]


def test_stamps_of_removed_objects_stay_bounded_and_a_stale_list_resurrects_none() -> None:
    cache = new_cache()
    since = cache.mark()
    churn = MAX_REMOVED_STAMPS * 2
    for index in range(churn):
        cache.upsert("Pod", pod(f"mnist-v1-{index}", resource_version=str(index + 1)))
        cache.remove("Pod", "ml", f"mnist-v1-{index}")
    assert len(cache._changed) <= MAX_REMOVED_STAMPS  # what the cache keeps about removals
    # A list taken before those removals, slower than all of them, must not bring one back.
    stale = [pod("mnist-v1-0", resource_version="1"), pod(f"mnist-v1-{churn - 1}", resource_version="1")]
    cache.replace("Pod", "ml", stale, since)
    assert cache.get("Pod", "ml", "mnist-v1-0") is None
    assert cache.get("Pod", "ml", f"mnist-v1-{churn - 1}") is None
    # A list taken after them is the truth again, and accounts for every removal.
    cache.replace("Pod", "ml", [pod("mnist-v1-0", resource_version="9")], cache.mark())
    assert cache.get("Pod", "ml", "mnist-v1-0") is not None
    assert len(cache._changed) == 1


def test_another_replicas_resources_are_cached_as_their_identity_alone() -> None:
    holding = {"mine"}
    cache = new_cache(lambda namespace, name: name in holding)
    spec = {"model": {"name": "mnist", "version": 1}}
    for name in ("mine", "theirs"):
        cache.upsert(
            KIND, model_deployment_body(name, resource_version="10", spec=spec, status={"phase": "Ready"})
        )
    mine, theirs = cache.get(KIND, "ml", "mine"), cache.get(KIND, "ml", "theirs")
    assert mine is not None
    assert not is_partial(mine)
    assert mine["status"] == {"phase": "Ready"}
    assert theirs is not None
    assert is_partial(theirs)
    assert set(theirs) == {"apiVersion", "kind", "metadata", PARTIAL}
    assert theirs["metadata"]["resourceVersion"] == "10"
    assert cache.partial_names(KIND, "ml") == ["theirs"]
    assert sorted(cache.owner_keys()) == [("ml", "mine"), ("ml", "theirs")]  # both still known
    # Children are kept whatever their owner's shard: their watches select them.
    cache.upsert("Pod", pod("theirs-v1-a", labels={LABEL_NAME: "theirs"}))
    assert cache.labelled("Pod", "ml", "theirs")


def test_a_whole_body_completes_a_partial_one_of_the_same_version() -> None:
    holding: set[str] = set()
    cache = new_cache(lambda namespace, name: name in holding)
    body = model_deployment_body("m", resource_version="10", spec={}, status={"phase": "Ready"})
    cache.upsert(KIND, body)
    holding.add("m")  # its shard taken: the same version, read whole, is news
    assert cache.upsert(KIND, body)
    held = cache.get(KIND, "ml", "m")
    assert held is not None
    assert not is_partial(held)
    # ... and an identity of the same version never replaces the whole body held.
    holding.clear()
    assert not cache.upsert(KIND, body)
    assert not is_partial(cache.get(KIND, "ml", "m"))
    # A list completes a partial body too.
    other = new_cache(lambda namespace, name: name in holding)
    other.upsert(KIND, body)
    holding.add("m")
    since = other.mark()
    assert other.replace(KIND, "ml", [body], since) == {"m"}
    assert not is_partial(other.get(KIND, "ml", "m"))


def test_handing_a_shard_over_keeps_only_the_identity_of_its_resources() -> None:
    holding = {"given", "kept"}
    cache = new_cache(lambda namespace, name: name in holding)
    for name in ("given", "kept"):
        cache.upsert(
            KIND, model_deployment_body(name, resource_version="10", spec={}, status={"phase": "Ready"})
        )
    holding.discard("given")
    keep_identity_of(cache, lambda key: key == ("ml", "given"))
    given, kept = cache.get(KIND, "ml", "given"), cache.get(KIND, "ml", "kept")
    assert is_partial(given)
    assert given is not None
    assert given["metadata"]["resourceVersion"] == "10"
    assert not is_partial(kept)  # still held: left whole
    # A resource still held is never trimmed, whatever it was named for.
    keep_identity_of(cache, lambda key: True)
    assert not is_partial(cache.get(KIND, "ml", "kept"))
