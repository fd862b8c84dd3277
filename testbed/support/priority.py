"""Lower CPU priority for the suite's bursts of set-up work (package builds, batches of CLI
processes), so the timing-bound test on the other worker keeps its share of the two cores.

Linux keeps the nice value per thread, and a child process inherits the value of the thread
that started it. So the work runs in a thread of its own that lowers only its own priority:
the test process's other threads keep theirs, and nothing has to be raised back (which
needs privileges an unprivileged user lacks).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

# CFS weighs nice 10 at about a tenth of nice 0: a burst still gets any idle core.
BACKGROUND_NICENESS = 10


def lower_this_threads_priority() -> None:
    """Make the calling thread, and every process it starts from now on, yield the CPU."""
    os.nice(BACKGROUND_NICENESS)


def in_background(work: Callable[[], T]) -> T:
    """``work()``, run at background priority in a thread of its own, and its result."""

    def run() -> T:
        lower_this_threads_priority()
        return work()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def background_pool(workers: int) -> ThreadPoolExecutor:
    """A thread pool whose threads, and the processes they start, run at background priority."""
    return ThreadPoolExecutor(max_workers=workers, initializer=lower_this_threads_priority)
