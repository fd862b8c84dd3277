"""The first passes' bound follows how long Service creates wait; no cluster."""

from __future__ import annotations

import pytest

from modeldeploy.kube.congestion import AdaptiveBound
from modeldeploy.kube.workqueue import WorkQueue

from .test_workqueue import FakeClock, held_until_done


def bound(ceiling: int = 16) -> tuple[AdaptiveBound, FakeClock]:
    clock = FakeClock()
    return AdaptiveBound(ceiling, slow=10.0, fast=3.0, quiet=60.0, clock=clock), clock


def test_it_starts_at_the_ceiling_and_holds_while_creates_are_neither_slow_nor_fast() -> None:
    first_passes, clock = bound()
    assert first_passes() == 16
    first_passes.observe(clock.now - 5.0, 5.0)
    assert first_passes() == 16


def test_a_slow_create_halves_the_bound_once_per_episode() -> None:
    first_passes, clock = bound()
    clock.now = 200.0
    first_passes.observe(clock.now - 12.0, 12.0)
    assert first_passes() == 8
    # Sent before that cut: they waited in the line the old bound made, and say nothing of
    # the new one.
    for _ in range(5):
        clock.now += 0.5
        first_passes.observe(190.0, clock.now - 190.0)
    assert first_passes() == 8
    clock.now = 215.0
    first_passes.observe(201.0, 14.0)  # sent after the cut, and still slow
    assert first_passes() == 4


def test_a_create_that_timed_out_counts_as_slow_and_the_bound_never_falls_below_one() -> None:
    first_passes, clock = bound(ceiling=2)
    for _ in range(3):
        clock.now += 40.0
        first_passes.observe(clock.now - 30.0, 30.0)
    assert first_passes() == 1


def test_fast_creates_raise_it_by_one_per_bounds_worth_up_to_the_ceiling() -> None:
    first_passes, clock = bound(ceiling=6)
    first_passes.observe(clock.now - 11.0, 11.0)
    assert first_passes() == 3
    for _ in range(3):
        first_passes.observe(clock.now, 0.5)
    assert first_passes() == 4
    for _ in range(3):
        first_passes.observe(clock.now, 0.5)
    assert first_passes() == 4, "raised by more than one per bound's worth of creates"
    for _ in range(100):
        first_passes.observe(clock.now, 0.5)
    assert first_passes() == 6


def test_with_no_service_created_for_a_while_it_is_back_at_the_ceiling() -> None:
    first_passes, clock = bound()
    first_passes.observe(clock.now - 20.0, 20.0)
    assert first_passes() == 8
    clock.now += 59.0
    assert first_passes() == 8
    clock.now += 2.0
    assert first_passes() == 16


def test_a_ceiling_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        AdaptiveBound(0)


@pytest.mark.timeout(20)
def test_the_work_queue_asks_the_bound_each_time_a_normal_key_could_start() -> None:
    first_passes, clock = bound(ceiling=2)
    queue = WorkQueue(normal_limit=first_passes)
    for key in ("n1", "n2", "n3", "n4"):
        queue.add(key)
    assert [queue.get(), queue.get()] == ["n1", "n2"]
    first_passes.observe(clock.now - 15.0, 15.0)  # the bound falls to 1
    queue.done("n1")
    assert held_until_done(queue, "n2") == "n3", "a normal key started past the lowered bound"
    clock.now += 61.0  # no Service created since: back to 2, so n4 starts beside n3
    assert queue.get() == "n4"
