"""The composition root: ``build_operator`` wires every part at construction, and a
standby's worker reconciles nothing. No cluster: nothing is started."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeldeploy.api.names import KIND
from modeldeploy.control.runtime import build_operator
from modeldeploy.control.settings import Settings
from modeldeploy.control.sharding import pass_for
from tests.unit.test_kube_client import loopback_kubeconfig

pytestmark = pytest.mark.timeout(30)


def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    # Port 1 refuses connections: building the operator must send no request.
    monkeypatch.setenv("KUBECONFIG", str(loopback_kubeconfig(tmp_path, 1)))
    return Settings.from_env({"POD_NAME": "replica-a", **env})


def test_the_reconciler_asks_the_elector_it_was_built_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    operator = build_operator(settings(tmp_path, monkeypatch, MODELDEPLOY_LEADER_ELECTION="true"))
    assert operator.elector is not None
    assert operator.elector.identity == "replica-a"
    assert operator.reconciler.leading == operator.elector.is_leader
    assert operator.reconciler.cache is operator.cache
    assert operator.reconciler.notifier is None  # no notifications file configured
    assert not operator.leading(), "not started: it leads nothing yet"
    # A standby's worker hands the key back untouched: no list waited for, no pass run.
    assert operator.handle(("ml", "mnist")) is None
    assert operator.watches.namespaces() == []


def test_without_leader_election_every_replica_leads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    operator = build_operator(settings(tmp_path, monkeypatch))
    assert operator.elector is None
    assert operator.leading()
    assert operator.reconciler.leading()


def test_a_deleted_model_deployment_leaves_the_cache_and_queues_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    operator = build_operator(settings(tmp_path, monkeypatch))
    body = {"metadata": {"name": "mnist", "namespace": "ml", "resourceVersion": "3"}}
    operator.cache.upsert(KIND, body)
    operator.on_model_deployment("DELETED", body)
    assert operator.cache.get(KIND, "ml", "mnist") is None
    assert operator.queue.ready() == 0
    assert operator.watches.namespaces() == [], "a deletion starts no watch"


def test_with_shards_a_pass_runs_and_writes_only_while_its_shard_is_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    operator = build_operator(
        settings(tmp_path, monkeypatch, MODELDEPLOY_LEADER_ELECTION="true", MODELDEPLOY_SHARDS="4")
    )
    assert operator.elector is None
    assert operator.shards is not None
    assert operator.reconciler.leading == operator.shards.leading
    assert operator.shards_held() == 0
    assert not operator.leads(("ml", "mnist")), "not started: it holds no shard yet"
    assert operator.handle(("ml", "mnist")) is None  # a shard held elsewhere: no pass run
    with pass_for(("ml", "mnist")):
        assert not operator.reconciler.leading()
    assert not operator.shards.leading(), "outside a pass nothing may be written"


def test_one_shard_keeps_todays_leader_election(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    operator = build_operator(
        settings(tmp_path, monkeypatch, MODELDEPLOY_LEADER_ELECTION="true", MODELDEPLOY_SHARDS="1")
    )
    assert operator.shards is None
    assert operator.elector is not None
    assert operator.elector.api.name == "modeldeploy-operator"
