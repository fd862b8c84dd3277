"""The scale benchmark's checks judge what they claim: two replicas writing one object in one
second, and a canary step repeated, skipped or out of order, are each caught (no cluster)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from testbed.bench.run import Audit
from testbed.bench.scale import StepLog, double_writes, table

pytestmark = pytest.mark.timeout(30)
A, B = "modeldeploy-operator", "modeldeploy-operator-2"


def entry(user: str, at: str, name: str = "m1", code: int = 200, verb: str = "patch") -> dict[str, Any]:
    return {
        "stage": "ResponseComplete",
        "user": {"username": user},
        "verb": verb,
        "objectRef": {
            "resource": "modeldeployments",
            "namespace": "ns",
            "name": name,
            "subresource": "status",
        },
        "responseStatus": {"code": code},
        "stageTimestamp": f"2026-12-05T10:00:{at}Z",
    }


def judged(tmp_path: Path, entries: list[dict[str, Any]]) -> dict[str, Any]:
    log = tmp_path / "audit.log"
    log.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return double_writes(Audit(log, users=(A, B)), 0, log.stat().st_size)


def test_two_replicas_writing_one_object_in_one_second_are_caught(tmp_path: Path) -> None:
    found = judged(tmp_path, [entry(A, "01.100000"), entry(B, "01.900000"), entry(A, "01.950000", "m2")])
    assert found["same_second"] == 1
    assert found["same_second_examples"] == ["modeldeployments/ns/m1/2026-12-05T10:00:01"]
    assert (found["objects_written"], found["written_by_two_replicas"]) == (2, 1)


def test_a_hand_over_seconds_apart_a_refused_write_and_other_clients_pass(tmp_path: Path) -> None:
    found = judged(
        tmp_path,
        [
            entry(A, "01.100000"),
            entry(B, "03.000000"),  # the heir, two seconds later
            entry(A, "03.200000", code=409),  # fenced: refused, nothing written
            entry("admin", "03.300000"),  # not a replica
            entry(A, "03.400000", verb="get"),  # not a write
        ],
    )
    assert found["same_second"] == 0
    assert found["written_by_two_replicas"] == 1


def log_of(*statuses: tuple[str, int, int]) -> StepLog:
    steps = StepLog(api=None, namespace="ns", names=["c0"])
    for name, version, step in statuses:
        steps.record({"metadata": {"name": name}, "status": {"canary": {"version": version, "step": step}}})
    return steps


def test_steps_in_order_pass_however_often_each_status_is_seen() -> None:
    assert log_of(("c0", 2, 0), ("c0", 2, 0), ("c0", 2, 1), ("c0", 2, 2), ("c0", 2, 2)).problems([2]) == []


@pytest.mark.parametrize(
    "steps",
    [
        [0, 2],  # a step skipped
        [0, 1, 0, 1, 2],  # a step repeated after going back
        [0, 2, 1],  # out of order
        [0, 1],  # never finished
    ],
)
def test_a_step_skipped_repeated_or_out_of_order_is_caught(steps: list[int]) -> None:
    problems = log_of(*(("c0", 2, s) for s in steps)).problems([2])
    assert problems == [f"c0 v2: steps {steps}, expected [0, 1, 2]"]


def test_a_rollout_never_seen_is_caught() -> None:
    assert log_of(("c0", 2, 0), ("c0", 2, 1), ("c0", 2, 2)).problems([2, 3]) == [
        "c0 v3: steps [], expected [0, 1, 2]"
    ]


def phase_figures(total: float) -> dict[str, Any]:
    return {"total_s": total, "p50_s": total / 2, "p99_s": total, "requests": {"per_object": 9.5}}


def scale_results(with_floor: bool) -> dict[str, Any]:
    results: dict[str, Any] = {
        "n": 10,
        "replicas": 3,
        "shards": 32,
        "idle_s": 5.0,
        "idle_writes": 0,
        "operator": phase_figures(30.0),
        "api": {
            "per_object_total": 8.0,
            "per_object_by_verb": {},
            "per_object_by_user": {},
            "status_writes_per_object": 2.0,
            "refused_status_writes_per_object": 0.0,
            "gate_patches_per_object": 1.0,
        },
        "replicas_footprint": {},
        "peak_rss_mib": {},
        "canary_reaction": {"m": 2, "transitions": 4, "p50_s": 0.05, "p99_s": 0.2, "max_s": 0.2},
        "checks": [],
        "wall_s": {},
    }
    if with_floor:
        results.update(floor=phase_figures(20.0), ratio_total=1.5, cpu_ratio=1.25)
    return results


def test_the_table_shows_the_ratio_with_a_floor_and_says_when_none_ran() -> None:
    with_floor = table(scale_results(with_floor=True))
    assert "ratio operator/floor: wall, CPU-seconds" in with_floor
    assert "1.50, 1.25" in with_floor
    without = table(scale_results(with_floor=False))
    assert "not run (--no-floor)" in without
    assert "ratio" not in without
    rows = dict(line.split("  ", 1) for line in without.splitlines())
    assert rows["operator: all Ready (model-aware)"].strip() == "30.0s (p50 15.0s, p99 30.0s)"
