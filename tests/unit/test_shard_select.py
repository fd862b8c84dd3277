"""Which children a replica watches with shards (control/shard_select.py): the label every
child and pod template carries only with more than one shard, never in a selector; the
selector of a held set of shards; and the cache's share of each of two label-selected
watches of one kind (kube/cache.py), and what it reports on /metrics."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modeldeploy.api.names import LABEL_MANAGED_BY, LABEL_NAME, LABEL_SHARD, MANAGED_BY
from modeldeploy.children.deployment import BuildOptions
from modeldeploy.children.desired import desired_state
from modeldeploy.control.kinds import new_cache
from modeldeploy.control.operator_metrics import CacheCollector
from modeldeploy.control.settings import Settings
from modeldeploy.control.shard_select import (
    held_selector,
    is_labelled,
    labelled_in,
    labelled_outside,
    shard_labels,
    unlabelled,
)
from modeldeploy.kube.shards import shard_of
from modeldeploy.rollout.types import Plan, VersionPlan

from .objects import model_deployment, pod

pytestmark = pytest.mark.timeout(30)


def test_one_shard_labels_nothing_and_watches_everything() -> None:
    assert shard_labels("ml", "mnist", 1) == {}
    assert held_selector({0}, 1) is None


def test_a_childs_label_is_its_resources_shard() -> None:
    for name in ("mnist", "fraud", "m7"):
        assert shard_labels("ml", name, 16) == {LABEL_SHARD: str(shard_of("ml", name, 16))}


def test_the_selector_names_the_held_shards_and_every_shard_held_selects_nothing_out() -> None:
    assert held_selector([12, 3, 7, 3], 16) == f"{LABEL_SHARD} in (3,7,12)"
    assert held_selector(range(16), 16) is None  # one replica alone: every child, labelled or not


def test_a_replica_holding_no_shard_selects_no_labelled_child() -> None:
    selector = held_selector([], 16)
    assert selector is not None
    assert selector.endswith("in (none)")
    assert "none" not in {str(shard) for shard in range(16)}


# A canary at v2 beside the stable v1: two Deployments (one handed over to an HPA's count).
PLAN = Plan(
    serving_version=1,
    target_version=2,
    apply=[VersionPlan(1, 2, "stable"), VersionPlan(2, None, "canary", initial_replicas=1)],
)


def test_the_shard_label_goes_on_every_child_and_pod_template_never_on_a_selector() -> None:
    md = model_deployment()
    plain = desired_state(md, PLAN, BuildOptions())
    before = copy.deepcopy(plain)
    labels = shard_labels(md.namespace, md.name, 8)
    labelled = desired_state(md, PLAN, BuildOptions(shard_count=8), labels)
    assert plain == before, "the unlabelled state is not changed in place"
    assert len(labelled.children) == len(plain.children)
    for child in labelled.children:
        assert child["metadata"]["labels"][LABEL_SHARD] == labels[LABEL_SHARD], child["kind"]
    deployments = [c for c in labelled.children if c["kind"] == "Deployment"]
    assert len(deployments) == 2
    for deployment in deployments:
        assert deployment["spec"]["template"]["metadata"]["labels"][LABEL_SHARD] == labels[LABEL_SHARD]
        assert LABEL_SHARD not in deployment["spec"]["selector"]["matchLabels"]
    # The hand-over applies the very Deployment the children list holds, labelled too.
    assert [d for d, _ in labelled.handovers] == [deployments[1]]


def test_without_labels_the_children_are_exactly_todays() -> None:
    md = model_deployment()
    assert desired_state(md, PLAN, BuildOptions(), {}) == desired_state(md, PLAN, BuildOptions())
    for child in desired_state(md, PLAN, BuildOptions()).children:
        assert LABEL_SHARD not in child["metadata"]["labels"]


@pytest.mark.parametrize(
    ("leader_election", "shards", "labelled"), [(True, 4, 4), (False, 4, 1), (True, 1, 1)]
)
def test_children_are_labelled_only_where_shards_are_in_force(
    leader_election: bool, shards: int, labelled: int
) -> None:
    settings = Settings(leader_election=leader_election, shard_count=shards)
    assert settings.build_options.shard_count == labelled


def child_pod(name: str, shard: int | None, version: str = "5") -> dict[str, Any]:
    labels = {LABEL_NAME: "mnist", LABEL_MANAGED_BY: MANAGED_BY}
    if shard is not None:
        labels[LABEL_SHARD] = str(shard)
    return pod(name, resource_version=version, labels=labels)


def test_each_watchs_list_replaces_only_its_share_of_a_kind() -> None:
    """A labelled watch and a watch of the unlabelled children share one kind and namespace:
    neither list drops what the other watches."""
    cache = new_cache()
    for body in (child_pod("old", None), child_pod("new", 1)):
        cache.upsert("Pod", body)
    since = cache.mark()
    cache.replace("Pod", "ml", [child_pod("newer", 2)], since, is_labelled)
    assert cache.get("Pod", "ml", "old") is not None, "an unlabelled pod is the other watch's"
    assert cache.get("Pod", "ml", "new") is None
    assert cache.get("Pod", "ml", "newer") is not None
    cache.replace("Pod", "ml", [], cache.mark(), unlabelled)
    assert cache.get("Pod", "ml", "old") is None
    assert cache.get("Pod", "ml", "newer") is not None
    assert cache.count("Pod", "ml", unlabelled) == 0
    assert cache.count("Pod", "ml") == 1


def test_watches_of_two_sets_of_shards_each_replace_only_their_own_children() -> None:
    """A replica that took shards beside those it held watches them apart: a list of either
    (a watch started again after a break) drops none of the other's children; letting
    shards go drops exactly theirs."""
    cache = new_cache()
    for body in (child_pod("held", 1), child_pod("taken", 2), child_pod("old", None)):
        cache.upsert("Pod", body)
    cache.replace("Pod", "ml", [child_pod("held", 1)], cache.mark(), labelled_in(frozenset({0, 1})))
    assert cache.get("Pod", "ml", "taken") is not None, "shard 2's child is the other watch's"
    cache.replace("Pod", "ml", [], cache.mark(), labelled_in(frozenset({2})))
    assert cache.get("Pod", "ml", "taken") is None
    cache.upsert("Pod", child_pod("taken", 2))
    cache.replace("Pod", "ml", [], cache.mark(), labelled_outside(frozenset({2})))
    assert {name for name in ("held", "taken", "old") if cache.get("Pod", "ml", name)} == {"taken", "old"}


def test_a_child_labelled_leaves_the_unlabelled_watch_without_leaving_the_cache() -> None:
    """Labelled by the operator's apply, a child leaves the unlabelled watch (a deletion to
    it) and enters the labelled one: in whichever order the two events come, it stays."""
    cache = new_cache()
    cache.upsert("Pod", child_pod("a", None, "5"))
    cache.upsert("Pod", child_pod("a", 3, "6"))  # the labelled watch's event came first
    cache.remove("Pod", "ml", "a", unlabelled)
    assert cache.get("Pod", "ml", "a") is not None
    cache.upsert("Pod", child_pod("b", None, "5"))
    cache.remove("Pod", "ml", "b", unlabelled)  # the deletion came first
    assert cache.get("Pod", "ml", "b") is None
    cache.upsert("Pod", child_pod("b", 3, "6"))
    assert cache.get("Pod", "ml", "b") is not None


def test_the_cached_objects_gauge_counts_the_cache_by_kind() -> None:
    cache = new_cache()
    for index in range(3):
        cache.upsert("Pod", child_pod(f"p{index}", index))
    cache.upsert("Pod", child_pod("p0", 0, "6"))  # a newer version is one object still
    (family,) = CacheCollector(cache).collect()
    assert family.name == "modeldeploy_cached_objects"
    assert {s.labels["kind"]: s.value for s in family.samples} == {"Pod": 3.0}
    cache.remove("Pod", "ml", "p1")
    (family,) = CacheCollector(cache).collect()
    assert {s.labels["kind"]: s.value for s in family.samples} == {"Pod": 2.0}
