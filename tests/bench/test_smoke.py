"""A small benchmark run in the suite: the harness works and the invariants hold (no timings asserted)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from testbed.bench import contract_price, floor_repeat, modelserver, relist_cost, service_rate
from testbed.bench.request_costs import CHILD_KINDS, measure
from testbed.bench.run import CONTRACT_RATIOS, PEER_RATIOS, BenchOptions, run_rounds, table
from testbed.cluster.localcluster import OPERATOR_USER

pytestmark = pytest.mark.timeout(300)


def model_deployment_requests(phase: dict[str, Any], verbs: tuple[str, ...], resource: str) -> float:
    """Per object, every client's requests of these verbs about one ModelDeployment resource."""
    by_request: dict[str, float] = phase["requests"]["per_object_by_request"]
    return sum(v for k, v in by_request.items() if k.split()[-2] in verbs and k.split()[-1] == resource)


def model_deployment_creates(phase: dict[str, Any]) -> float:
    return model_deployment_requests(phase, ("create",), "modeldeployments")


def model_deployment_status_writes(phase: dict[str, Any]) -> float:
    return model_deployment_requests(phase, ("patch", "update"), "modeldeployments/status")


@pytest.mark.timeout(720)  # four phases per round, two rounds, each on a fresh control plane
def test_benchmark_smoke_run(tmp_path: Path) -> None:
    results = run_rounds(BenchOptions(n=6, m=2, idle=3, replicas=1, workers=2), rounds=2, root=tmp_path)
    assert math.isfinite(results["ratio_total"])
    assert results["ratio_total"] > 0
    # Each round ran on its own control plane; the median is taken over them.
    ratios = [r["ratio_total"] for r in results["rounds"]]
    assert len(ratios) == 2
    assert all(math.isfinite(r) and r > 0 for r in ratios)
    assert min(ratios) <= results["ratio_median"] <= max(ratios)
    # Beside it, the ratio of the CPU seconds each phase cost, per round and its median.
    cpu_ratios = [r["cpu_ratio"] for r in results["rounds"]]
    assert all(math.isfinite(r) and r > 0 for r in cpu_ratios)
    assert min(cpu_ratios) <= results["cpu_ratio_median"] <= max(cpu_ratios)
    # A converged operator writes nothing at all.
    assert results["api"]["idle_writes"] == 0
    # Every resource's status was written at least once, and each child applied.
    assert results["api"]["status_writes_per_object"] >= 1
    assert results["api"]["gate_patches_per_object"] >= 1  # one pod per object at least
    assert results["api"]["per_object_by_verb"].get("patch", 0) >= 3
    assert results["footprint"]["peak_rss_mib"] > 0
    # Both canaries passed both steps: two step transitions each were timed.
    assert results["canary_reaction"]["transitions"] == 2 * 2
    # ... each kept by the step it reached, for a look at where a tail comes from.
    assert {k: len(v) for k, v in results["canary_reaction"]["delays_ms_by_step"].items()} == {"1": 2, "2": 2}
    # One pod per canary: its gate opened once. Five status writes at most per rollout
    # (started; step 1 started; step 2 started with step 1's end; steps passed; promoted):
    # a promotion that looked like a rollout for a moment wrote two more.
    canary_requests = results["canary_reaction"]["requests"]
    assert canary_requests["gate_patches_per_rollout"] == 1
    assert 4 <= canary_requests["status_writes_per_rollout"] <= 5
    assert canary_requests["per_object"] > canary_requests["operator_per_rollout"] > 0
    assert "ratio operator/floor" in table(results)
    assert "ratio over 2 rounds: median" in table(results)
    assert "CPU-seconds ratio over 2 rounds: median" in table(results)
    # The contract floor ran in each round: its client's requests brought every resource to
    # Ready without the operator, and the ratio splits into the operator's part and theirs.
    for r in results["rounds"]:
        assert r["contract"]["total_s"] > 0
        assert r["contract"]["cpu_s"]["kube-apiserver"] > 0
        assert all(math.isfinite(r[key]) and r[key] > 0 for key in CONTRACT_RATIOS)
    assert results["operator_over_contract_median"] > 0
    assert "operator/contract floor over 2 rounds: median" in table(results)
    # Every client's requests about each phase's objects, per object. On top of the floor's
    # three children the operator's phase and the contract floor make the cluster answer the
    # user's one create and at least one status write (the gate and an Event besides, and what
    # those set off). At least one, not two: when a model is available before the first write
    # is sent, Progressing and Ready fold into one. Counted by kind: the controllers' own
    # status writes vary by more than one per object between phases at N=6.
    for r in results["rounds"]:
        floor_requests = r["floor"]["requests"]["per_object"]
        assert model_deployment_creates(r["floor"]) == model_deployment_status_writes(r["floor"]) == 0
        for phase in ("operator", "contract"):
            assert model_deployment_creates(r[phase]) == 1, phase
            assert model_deployment_status_writes(r[phase]) >= 1, phase
            assert r[phase]["requests"]["per_object"] > floor_requests, phase
        by_request = r["operator"]["requests"]["per_object_by_request"]
        assert by_request[f"{OPERATOR_USER} patch modeldeployments/status"] >= 1
    assert "API requests per object, every client" in table(results)
    # The peer: Argo Rollouts' controller, built from its module, brought the same objects to
    # Healthy in each round, then walked both canaries through both pauses, timed per pause.
    for r in results["rounds"]:
        argo = r["peer"]
        assert argo["total_s"] > 0
        assert argo["cpu_s"]["argo-rollouts"] > 0
        assert argo["own"]["per_object_by_verb"].get("create", 0) >= 1  # its ReplicaSets
        # Its metrics and health servers, and nothing else, listen, on loopback alone.
        assert len(argo["listening"]) == 2, argo["listening"]
        assert all(address.startswith("127.0.0.1:") for address in argo["listening"]), argo["listening"]
        assert argo["requests"]["per_object"] > argo["own"]["per_object_total"] > 0
        assert all(math.isfinite(r[key]) and r[key] > 0 for key in PEER_RATIOS)
    reaction = results["peer"]["canary_reaction"]
    assert reaction["transitions"] == 2 * 2
    assert {k: len(v) for k, v in reaction["delays_ms_by_step"].items()} == {"1": 2, "2": 2}
    assert reaction["requests"]["own_per_rollout"] > 0
    assert isinstance(results["peer"]["idle_writes"], int)
    assert "peer: Argo Rollouts v" in table(results)
    assert "operator/peer over 2 rounds: median" in table(results)


def test_request_costs_tool_measures_every_kind(tmp_path: Path) -> None:
    results = dict(measure(tmp_path, count=20))
    assert set(results) == {
        "ModelDeployment create",
        "ModelDeployment status patch",
        "Event create",
        "ConfigMap apply",
        "label merge patch (ConfigMap)",
        *(f"{kind} {how}" for kind in CHILD_KINDS for how in ("apply (new)", "create")),
    }
    assert all(used["kube-apiserver"] >= 0 for used in results.values())
    assert sum(used["kube-apiserver"] for used in results.values()) > 0  # 100 requests cost something


def test_service_rate_tool_creates_what_it_counts(tmp_path: Path) -> None:
    rows = service_rate.measure(tmp_path, count=10, clients=[2], presents=[0, 15])
    assert [(present, clients) for present, clients, _ in rows] == [(0, 2), (15, 2)]
    assert all(set(rates) == {"clusterip", "headless", "configmap"} for _, _, rates in rows)
    assert all(rate > 0 for _, _, rates in rows for rate in rates.values())


def test_model_server_figures_are_measured(capsys: pytest.CaptureFixture[str]) -> None:
    assert modelserver.main(["--rounds", "1", "--pods", "1,3", "--seconds", "1"]) == 0
    printed = capsys.readouterr().out
    assert "start to AVAILABLE" in printed
    assert "3 pod(s) of one model: peak RSS" in printed
    assert "models loaded {1}" in printed  # three pods, one loaded model
    assert "predict latency at 40 req/s" in printed


def test_floor_repeat_prints_the_spread_of_identical_work(capsys: pytest.CaptureFixture[str]) -> None:
    assert floor_repeat.main(["--n", "3", "--rounds", "1", "--workers", "2"]) == 0
    printed = capsys.readouterr().out
    # Three floors ran on one control plane, the third after the first two were deleted.
    assert "round 1: A " in printed
    assert ", B " in printed
    assert ", C " in printed
    assert "B/A: wall median" in printed
    assert "C/A: wall median" in printed


def test_relist_cost_compares_both_lists(capsys: pytest.CaptureFixture[str]) -> None:
    assert relist_cost.main(["--n", "20", "--rounds", "1"]) == 0
    printed = capsys.readouterr().out
    assert "whole bodies" in printed
    assert "names and versions" in printed
    # measure() checked that the names-and-versions list found every one of the 20
    assert "names and versions / whole bodies:" in printed


def test_contract_price_adds_one_part_per_phase(tmp_path: Path) -> None:
    n = 3
    results = contract_price.one_round(tmp_path, n=n, workers=2, alone=False)
    assert list(results) == [p.name for p in contract_price.PHASES]
    assert [results[p.name]["position"] for p in contract_price.PHASES] == [0, 1, 2, 3, 4]
    # Over five rounds each phase runs once in each position: the order is charged to none.
    for phase in contract_price.PHASES:
        assert sorted(contract_price.rotated(i).index(phase) for i in range(5)) == [0, 1, 2, 3, 4]
    # Each phase finished (a gate left on pods nobody opens, or one opened where none was,
    # would have timed out) and sent what its parts say, once per object.
    expected = {
        "resource": {"apply": 3 * n},
        "status": {"apply": 3 * n, "status": 2 * n},
        "gate": {"apply": 3 * n, "status": 2 * n, "gate": n},
        "contract": {"apply": 3 * n, "status": 2 * n, "gate": n, "event": n},
    }
    for name, sent in expected.items():
        assert results[name]["sent"] == sent, name

    # The API server's audit log agrees where a request is the client's alone.
    def md_requests(phase: str, key: str) -> float:
        by_request: dict[str, float] = results[phase]["requests"]["per_object_by_request"]
        return by_request.get(f"admin {key}", 0)

    assert md_requests("floor", "create modeldeployments") == 0
    for name in expected:
        assert md_requests(name, "create modeldeployments") == 1, name
        assert md_requests(name, "patch modeldeployments/status") == (2 if "status" in expected[name] else 0)
        assert results[name]["wall_s"] > 0
        assert results[name]["cpu_s"] > 0
    printed = contract_price.report([results])
    assert "the model gate" in printed
    assert "medians over 1 round(s)" in printed
    # What each part set off: the status writes are the client's alone, two per object.
    assert "status added, per object: " in printed
    assert "admin patch modeldeployments/status +2.00" in printed
