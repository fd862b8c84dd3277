"""The work queue de-duplicates keys and never runs one key on two workers at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable

import pytest

from modeldeploy.kube.workqueue import WorkQueue, run_workers


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_duplicate_adds_are_processed_once() -> None:
    queue = WorkQueue()
    for _ in range(3):
        queue.add("a")
    queue.add("b")
    assert queue.get() == "a"
    assert queue.get() == "b"
    assert len(queue) == 0


def test_key_added_while_processing_runs_again_after_done() -> None:
    queue = WorkQueue()
    queue.add("a")
    assert queue.get() == "a"
    queue.add("a")  # arrives while "a" is being processed
    assert len(queue) == 0  # not handed to a second worker
    queue.done("a")
    assert queue.get() == "a"


def test_add_after_waits_for_its_time() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock=clock)
    queue.add_after("late", 10)
    queue.add("now")
    assert queue.get() == "now"
    queue.done("now")
    clock.now = 10.5
    assert queue.get() == "late"


@pytest.mark.timeout(20)
def test_workers_never_overlap_on_one_key() -> None:
    queue = WorkQueue()
    active: dict[Hashable, int] = {}
    overlaps: list[Hashable] = []
    processed: list[Hashable] = []
    lock = threading.Lock()

    def handle(key: Hashable) -> float | None:
        with lock:
            active[key] = active.get(key, 0) + 1
            if active[key] > 1:
                overlaps.append(key)
        time.sleep(0.001)  # hold the key so concurrent adds pile up on it
        with lock:
            active[key] -= 1
            processed.append(key)
        return None

    run_workers(queue, handle, 4)
    for i in range(200):
        queue.add(f"k{i % 5}")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with lock:
            idle = not any(active.values())
        if idle and len(queue) == 0 and set(processed) == {f"k{i}" for i in range(5)}:
            break
        time.sleep(0.01)
    queue.close()
    assert overlaps == []
    assert set(processed) == {f"k{i}" for i in range(5)}
    assert len(processed) < 200  # duplicates collapsed


def test_urgent_keys_go_before_normal_ones() -> None:
    queue = WorkQueue()
    queue.add("first-pass-1")
    queue.add("first-pass-2")
    queue.add("pod-ready", urgent=True)
    assert queue.get() == "pod-ready"
    assert queue.get() == "first-pass-1"


def test_urgent_add_moves_a_queued_key_up_without_duplicating_it() -> None:
    queue = WorkQueue()
    queue.add("a")
    queue.add("b")
    queue.add("b", urgent=True)
    assert queue.get() == "b"
    assert queue.get() == "a"
    assert len(queue) == 0


def test_urgency_of_an_add_during_processing_is_kept() -> None:
    queue = WorkQueue()
    queue.add("a")
    queue.add("b")
    assert queue.get() == "a"
    queue.add("a", urgent=True)  # e.g. its pod became ready while its first pass ran
    queue.done("a")
    assert queue.get() == "a"


def test_due_timers_are_urgent() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock=clock)
    queue.add_after("canary-step", 3)
    queue.add("new")
    clock.now = 3.5
    assert queue.get() == "canary-step"


def test_backoff_doubles_to_five_minutes_and_resets_on_success() -> None:
    from modeldeploy.kube.workqueue import Backoff

    backoff = Backoff()
    delays = [backoff.failed("k") for _ in range(11)]
    assert delays[:4] == [1.0, 2.0, 4.0, 8.0]
    assert delays[-1] == 300.0
    assert backoff.failed("other") == 1.0  # per key
    backoff.succeeded("k")
    assert backoff.failed("k") == 1.0


def test_longest_pass_is_the_oldest_pass_under_way() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock=clock)
    assert queue.longest_pass_seconds() == 0.0
    queue.add("old")
    queue.add("young")
    assert queue.get() == "old"
    clock.now = 5.0
    assert queue.get() == "young"
    clock.now = 12.0
    assert queue.longest_pass_seconds() == 12.0
    queue.done("old")
    assert queue.longest_pass_seconds() == 7.0
    queue.done("young")
    assert queue.longest_pass_seconds() == 0.0


def test_a_key_waits_for_one_timer_the_earliest() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock=clock)
    for delay in range(1000, 0, -1):  # every pass asks again, each sooner
        queue.add_after("a", float(delay))
    for delay in range(1, 1000):
        queue.add_after("a", float(delay))  # later than the one already waiting: nothing new
    assert len(queue) == 1
    assert len(queue._delayed) <= 2 * 1 + 16  # superseded timers do not pile up
    clock.now = 1.0
    assert queue.get() == "a"
    queue.done("a")
    clock.now = 2000.0
    assert len(queue) == 0
    assert queue.ready() == 0


def held_until_done(queue: WorkQueue, running: Hashable) -> Hashable | None:
    """The key a waiting worker gets once ``running`` is done; None if it got one before."""
    taken: list[Hashable | None] = []
    taker = threading.Thread(target=lambda: taken.append(queue.get()), daemon=True)
    taker.start()
    taker.join(0.2)
    if taken:
        return None
    queue.done(running)
    taker.join(5)
    return taken[0] if taken else None


def test_normal_passes_beyond_the_bound_wait_while_urgent_and_first_keys_go() -> None:
    queue = WorkQueue(normal_limit=2)
    for key in ("n1", "n2", "n3"):
        queue.add(key)
    assert [queue.get(), queue.get()] == ["n1", "n2"]
    queue.add("u", urgent=True)
    queue.add("f", first=True)
    assert [queue.get(), queue.get()] == ["f", "u"]
    queue.done("u")  # an urgent pass ending frees no normal slot
    assert held_until_done(queue, "n1") == "n3", "a third normal pass started past the bound"


def test_a_normal_key_made_urgent_is_not_held_by_the_bound() -> None:
    queue = WorkQueue(normal_limit=1)
    queue.add("n1")
    queue.add("n2")
    assert queue.get() == "n1"
    queue.add("n2", urgent=True)  # a child of n2 changed while it waited
    assert queue.get() == "n2"


@pytest.mark.timeout(20)
def test_a_burst_of_normal_passes_leaves_workers_for_urgent_work() -> None:
    """Normal passes that all block (as a first rollout waits on the API server's
    ClusterIP allocation) hold at most the bound's workers: an urgent key still runs, and
    never more normal passes at once than the bound."""
    queue = WorkQueue(normal_limit=2)
    release, lock = threading.Event(), threading.Lock()
    running: set[Hashable] = set()
    most_at_once: list[int] = [0]
    urgent_done = threading.Event()

    def handle(key: Hashable) -> None:
        if key == "urgent":
            urgent_done.set()
            return None
        with lock:
            running.add(key)
            most_at_once[0] = max(most_at_once[0], len(running))
        release.wait(10)
        with lock:
            running.discard(key)
        return None

    run_workers(queue, handle, 4)
    for i in range(10):
        queue.add(f"n{i}")
    deadline = time.monotonic() + 5
    while len(running) < 2:  # the burst has taken its workers
        assert time.monotonic() < deadline, "no normal pass started"
        time.sleep(0.01)
    queue.add("urgent", urgent=True)
    try:
        assert urgent_done.wait(5), "the urgent key found no free worker"
    finally:
        release.set()
    deadline = time.monotonic() + 10
    while len(queue) or running:
        assert time.monotonic() < deadline, "the normal keys did not all run"
        time.sleep(0.01)
    queue.close()
    assert most_at_once[0] == 2


def test_a_failed_normal_pass_comes_back_normal_until_one_finishes() -> None:
    queue = WorkQueue(normal_limit=1)
    queue.add("n1")
    queue.add("n2")
    assert queue.get() == "n1"
    queue.add("n1", urgent=True)  # its own child's event, while it waits on the API server
    queue.done("n1", finished=False)
    assert queue.get() == "n2"  # n1 went back behind n2, not ahead as urgent
    queue.add("n1", urgent=True)  # its retry timer falling due
    assert held_until_done(queue, "n2") == "n1", "a failed normal pass came back past the bound"
    queue.done("n1")  # finished: n1 is urgent again like any key
    queue.add("n3")
    assert queue.get() == "n3"
    queue.add("n1", urgent=True)
    assert queue.get() == "n1"


@pytest.mark.timeout(20)
def test_failed_first_passes_and_their_childrens_events_stay_within_the_bound() -> None:
    queue = WorkQueue(normal_limit=1)
    lock = threading.Lock()
    calls: dict[Hashable, int] = {}
    running: set[Hashable] = set()
    finished: set[Hashable] = set()
    most_at_once = [0]
    overlap = threading.Event()

    def handle(key: Hashable) -> None:
        with lock:
            calls[key] = calls.get(key, 0) + 1
            running.add(key)
            most_at_once[0] = max(most_at_once[0], len(running))
            if len(running) > 1:
                overlap.set()
        try:
            if calls[key] == 1:
                queue.add(key, urgent=True)  # the children it created raised events
                raise RuntimeError("the Service apply timed out")
            overlap.wait(0.2)  # room for another pass to join, were it let past the bound
            finished.add(key)
        finally:
            with lock:
                running.discard(key)

    run_workers(queue, handle, 4)
    for i in range(4):
        queue.add(f"n{i}")
    deadline = time.monotonic() + 15
    while len(finished) < 4:
        assert time.monotonic() < deadline, f"only {sorted(map(str, finished))} finished"
        time.sleep(0.01)
    queue.close()
    assert most_at_once[0] == 1
