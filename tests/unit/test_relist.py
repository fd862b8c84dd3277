"""The ModelDeployments' relist: names and versions are listed; a body is read only where
the cache holds another version or none (or, for the shards a replica takes, only part of
it), and what the list lacks (a ghost) leaves the cache."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from modeldeploy.api.names import KIND
from modeldeploy.control.kinds import new_cache
from modeldeploy.control.watches import WHOLE_LIST_OVER, confirm_and_queue_everything, relist
from modeldeploy.kube.cache import is_partial
from modeldeploy.kube.kinds import Kind
from modeldeploy.kube.workqueue import WorkQueue

from .objects import model_deployment_body


def md(name: str, version: str, phase: str = "Ready") -> dict[str, Any]:
    """The ModelDeployment ``name`` at resourceVersion ``version``, its status last written by us."""
    return model_deployment_body(
        name,
        resource_version=version,
        managed_fields=[{"manager": "modeldeploy", "operation": "Update"}],
        status={"phase": phase},
    )


class LiveModelDeployments:
    """What the API server holds, answering the two requests a relist may send."""

    def __init__(self, live: dict[str, dict[str, Any]]) -> None:
        self.live = live
        self.read: list[str] = []

    def list_versions(self, kind: Kind, namespace: str) -> dict[str, str]:
        assert kind.kind == KIND
        return {name: body["metadata"]["resourceVersion"] for name, body in self.live.items()}

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        assert kind == KIND
        self.read.append(name)
        return self.live.get(name)


def test_a_relist_reads_only_the_bodies_it_lacks_and_drops_ghosts() -> None:
    cache = new_cache()
    cache.upsert(KIND, md("steady", "10"))
    cache.upsert(KIND, md("ghost", "11"))  # deleted while kopf's watch was down
    cache.upsert(KIND, md("missed", "12"))  # changed while it was down
    server = LiveModelDeployments(
        {"steady": md("steady", "10"), "missed": md("missed", "20", "Progressing"), "new": md("new", "21")}
    )
    touched = relist(server, cache, "ml")  # type: ignore[arg-type]
    assert touched == {"missed", "new"}
    assert sorted(server.read) == ["missed", "new"]  # the steady one's body was not asked for
    assert cache.get(KIND, "ml", "ghost") is None
    missed = cache.get(KIND, "ml", "missed")
    assert missed is not None
    assert missed["status"] == {"phase": "Progressing"}
    assert "managedFields" not in missed["metadata"]  # stored slimmed, as the watch's are
    # On a steady cluster a relist reads no body at all and changes nothing.
    server.read.clear()
    assert relist(server, cache, "ml") == set()  # type: ignore[arg-type]
    assert server.read == []


def test_a_body_deleted_between_the_list_and_its_read_is_not_cached() -> None:
    cache = new_cache()

    class GoneBeforeRead(LiveModelDeployments):
        def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
            self.read.append(name)
            return None

    server = GoneBeforeRead({"brief": md("brief", "5")})
    assert relist(server, cache, "ml") == set()  # type: ignore[arg-type]
    assert server.read == ["brief"]
    assert cache.get(KIND, "ml", "brief") is None


def test_a_body_written_while_the_list_was_on_its_way_is_not_read_again() -> None:
    # A status write lands (and goes through to the cache) after the relist's mark, before
    # its list is compared: the cache is newer than the list, and no GET is needed.
    cache = new_cache()
    cache.upsert(KIND, md("busy", "10", "Progressing"))

    class WrittenMeanwhile(LiveModelDeployments):
        def list_versions(self, kind: Kind, namespace: str) -> dict[str, str]:
            listed = super().list_versions(kind, namespace)
            cache.upsert(KIND, md("busy", "12", "Ready"))  # our write-through, after the list
            return listed

    server = WrittenMeanwhile({"busy": md("busy", "11", "Progressing")})
    assert relist(server, cache, "ml") == set()  # type: ignore[arg-type]
    assert server.read == []
    kept = cache.get(KIND, "ml", "busy")
    assert kept is not None
    assert kept["status"] == {"phase": "Ready"}


def test_a_replica_taking_the_lease_acts_only_on_the_status_the_old_leader_left() -> None:
    """Its watch may be behind the previous leader's last status write (a rollback recorded
    just before the hand-over): the first passes must start from that write, not the older copy."""
    from modeldeploy.control.watches import confirm_and_queue_everything
    from modeldeploy.kube.workqueue import WorkQueue

    cache = new_cache()
    cache.upsert(KIND, md("mnist", "10", "Progressing"))
    server = LiveModelDeployments({"mnist": md("mnist", "11", "Degraded")})  # the old leader's write
    queue = WorkQueue()
    confirm_and_queue_everything(server, cache, queue)  # type: ignore[arg-type]
    held = cache.get(KIND, "ml", "mnist")
    assert held is not None
    assert held["status"] == {"phase": "Degraded"}
    assert len(queue) == 1


def test_a_replica_taking_shards_confirms_and_queues_only_their_resources() -> None:
    from modeldeploy.control.watches import confirm_and_queue_everything
    from modeldeploy.kube.workqueue import WorkQueue

    cache = new_cache()
    cache.upsert(KIND, md("mine", "10", "Progressing"))
    cache.upsert(KIND, md("theirs", "20", "Progressing"))
    server = LiveModelDeployments(
        {"mine": md("mine", "11", "Degraded"), "theirs": md("theirs", "20", "Ready")}
    )
    queue = WorkQueue()
    confirm_and_queue_everything(server, cache, queue, lambda key: key == ("ml", "mine"))  # type: ignore[arg-type]
    assert len(queue) == 1
    assert queue.get() == ("ml", "mine")
    mine = cache.get(KIND, "ml", "mine")
    assert mine is not None
    assert mine["status"] == {"phase": "Degraded"}


class ListingModelDeployments(LiveModelDeployments):
    """Also answers a list of whole bodies, page by page through ``each`` as the client does."""

    def __init__(self, live: dict[str, dict[str, Any]]) -> None:
        super().__init__(live)
        self.whole_lists = 0

    def list_with_version(
        self, kind: Kind, namespace: str, each: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], str]:
        assert kind.kind == KIND
        self.whole_lists += 1
        return [each(body) for body in self.live.values()], "99"


@pytest.mark.parametrize("taken_count", [3, WHOLE_LIST_OVER + 5])
def test_a_replica_taking_shards_reads_whole_the_resources_it_held_in_part(taken_count: int) -> None:
    """Another replica's resources are cached as their identity alone; taking their shard
    reads them whole: one read each for a few, one list of whole bodies for many."""
    holding: set[str] = set()
    cache = new_cache(lambda namespace, name: name in holding)
    live = {f"m{i}": md(f"m{i}", str(10 + i), "Progressing") for i in range(taken_count + 2)}
    for body in live.values():
        cache.upsert(KIND, body)
    assert all(is_partial(cache.get(KIND, "ml", name)) for name in live)
    taken = set(list(live)[:taken_count])
    holding |= taken
    server = ListingModelDeployments(live)
    queue = WorkQueue()
    confirm_and_queue_everything(server, cache, queue, lambda key: key[1] in taken)  # type: ignore[arg-type]
    for name in live:
        held = cache.get(KIND, "ml", name)
        assert held is not None
        if name in taken:
            assert not is_partial(held), name
            assert held["status"] == {"phase": "Progressing"}
        else:  # still another replica's: never read, still in part
            assert is_partial(held), name
            assert "status" not in held, name
    assert len(queue) == taken_count
    if taken_count > WHOLE_LIST_OVER:
        assert (server.whole_lists, server.read) == (1, [])
    else:
        assert (server.whole_lists, sorted(server.read)) == (0, sorted(taken))
    # Held whole now, a steady relist reads nothing again.
    server.read.clear()
    assert relist(server, cache, "ml") == set()  # type: ignore[arg-type]
    assert server.read == []
    assert server.whole_lists == (1 if taken_count > WHOLE_LIST_OVER else 0)


def test_a_replica_taking_shards_passes_over_rollouts_under_way_first() -> None:
    cache = new_cache()
    live = {
        "ready-a": md("ready-a", "10"),
        "canary": md("canary", "11", "Ready"),
        "ready-b": md("ready-b", "12"),
        "first": md("first", "13", "Progressing"),
    }
    live["canary"]["status"]["canary"] = {"version": 2, "step": 1}
    for body in live.values():
        cache.upsert(KIND, body)
    queue = WorkQueue()
    confirm_and_queue_everything(LiveModelDeployments(live), cache, queue)  # type: ignore[arg-type]
    order = [queue.get() for _ in range(len(live))]
    assert set(order[:2]) == {("ml", "canary"), ("ml", "first")}, order
    assert set(order[2:]) == {("ml", "ready-a"), ("ml", "ready-b")}, order
