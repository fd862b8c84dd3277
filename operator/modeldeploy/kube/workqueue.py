"""A de-duplicating work queue with delayed adds and three priorities, drained by worker threads.

One key is never processed by two workers at once; a key added while it is
being processed runs once more afterwards. This is what serialises all work on
one object without a lock per object.

Three priorities, so work already under way (urgent: a child changed, a timer fell due)
need not wait behind a burst of first passes in a first-in-first-out queue, and a
person's action (first) waits behind nothing.

Normal passes (first rollouts, resyncs) may also be bounded in number at once. A first
rollout creates a Service, and the API server allocates ClusterIPs one at a time (a lock
held across a request of its own): with thousands created at once, every worker waited in
that line, urgent work found no free worker, and passes that waited past their read
timeout gave their allocation back, so half the line's work was thrown away. The bound
may adapt to how long those creates wait (``congestion.AdaptiveBound``). A normal pass
that fails stays normal until one of the key's passes finishes: its retry, and the events
its own children raised meanwhile, would otherwise come back urgent and join the line
beyond the bound.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable

LOG = logging.getLogger(__name__)
PRIORITY_NORMAL, PRIORITY_URGENT, PRIORITY_FIRST = 0, 1, 2


class WorkQueue:
    def __init__(
        self, clock: Callable[[], float] = time.monotonic, normal_limit: int | Callable[[], int] | None = None
    ) -> None:
        """``normal_limit``: at most this many normal passes at once (None: no bound), or a
        function asked for that number each time a normal key could start (a bound that
        adapts, ``congestion.AdaptiveBound``); urgent and first keys are taken whatever it is."""
        self._clock = clock
        self._normal_limit: Callable[[], int] | None
        if isinstance(normal_limit, int):
            fixed = normal_limit
            self._normal_limit = lambda: fixed
        else:
            self._normal_limit = normal_limit
        self._normal_running: set[Hashable] = set()
        self._normal_owed: set[Hashable] = set()  # a normal pass failed; none finished since
        self._cond = threading.Condition()
        # By priority: normal (first passes), urgent (children, timers), first (a person's action).
        self._queues: tuple[deque[Hashable], ...] = (deque(), deque(), deque())
        self._queued: dict[Hashable, int] = {}  # key -> priority
        self._processing: dict[Hashable, float] = {}  # key -> when its pass started
        self._dirty: dict[Hashable, int] = {}  # added while processing -> priority
        self._delayed: list[tuple[float, int, Hashable]] = []
        # key -> when its earliest timer falls due: a key waits for one timer at a time, as
        # client-go's delaying queue does, since the pass it starts sets the next. Heap
        # entries not matching it are stale, skipped when due and dropped when they pile up.
        self._due: dict[Hashable, float] = {}
        self._seq = 0
        self._closed = False

    def add(self, key: Hashable, urgent: bool = False, first: bool = False) -> None:
        """Queue ``key``; ``urgent`` before first passes, ``first`` (a person's action)
        before everything."""
        with self._cond:
            self._add_locked(key, PRIORITY_FIRST if first else PRIORITY_URGENT if urgent else PRIORITY_NORMAL)

    def _add_locked(self, key: Hashable, priority: int) -> None:
        if priority == PRIORITY_URGENT and key in self._normal_owed:
            priority = PRIORITY_NORMAL
        if key in self._processing:
            self._dirty[key] = max(self._dirty.get(key, PRIORITY_NORMAL), priority)
        elif key not in self._queued:
            self._queued[key] = priority
            self._queues[priority].append(key)
            self._cond.notify()
        elif priority > self._queued[key]:
            self._queues[self._queued[key]].remove(key)  # rare: a waiting key moved up
            self._queued[key] = priority
            self._queues[priority].append(key)

    def add_after(self, key: Hashable, delay: float) -> None:
        """Add ``key`` (as urgent) once ``delay`` seconds have passed: a timer falling due.
        A key already waiting for an earlier time keeps that one only."""
        if delay <= 0:
            self.add(key, urgent=True)
            return
        with self._cond:
            due = self._clock() + delay
            if key in self._due and self._due[key] <= due:
                return
            self._due[key] = due
            self._seq += 1
            heapq.heappush(self._delayed, (due, self._seq, key))
            self._drop_stale_timers()
            self._cond.notify()

    def _drop_stale_timers(self) -> None:
        """Rebuild the heap once superseded timers outnumber the live ones."""
        if len(self._delayed) > 2 * len(self._due) + 16:
            self._delayed = [entry for entry in self._delayed if self._due.get(entry[2]) == entry[0]]
            heapq.heapify(self._delayed)

    def _promote_due(self) -> float | None:
        """Move due delayed keys to the queue; seconds until the next one is due."""
        now = self._clock()
        while self._delayed and self._delayed[0][0] <= now:
            due, _, key = heapq.heappop(self._delayed)
            if self._due.get(key) == due:
                del self._due[key]
                self._add_locked(key, PRIORITY_URGENT)
        return self._delayed[0][0] - now if self._delayed else None

    def get(self) -> Hashable | None:
        """The next key to process, blocking; None once the queue is closed."""
        with self._cond:
            while True:
                if self._closed:
                    return None
                wait = self._promote_due()
                priority = self._next_priority()
                if priority is not None:
                    key = self._queues[priority].popleft()
                    del self._queued[key]
                    self._processing[key] = self._clock()
                    if priority == PRIORITY_NORMAL:
                        self._normal_running.add(key)
                    return key
                self._cond.wait(timeout=wait)

    def _next_priority(self) -> int | None:
        """The highest priority with a key waiting that may start now."""
        for priority in (PRIORITY_FIRST, PRIORITY_URGENT):
            if self._queues[priority]:
                return priority
        if self._queues[PRIORITY_NORMAL] and not self._normal_full():
            return PRIORITY_NORMAL
        return None

    def _normal_full(self) -> bool:
        return self._normal_limit is not None and len(self._normal_running) >= self._normal_limit()

    def done(self, key: Hashable, finished: bool = True) -> None:
        """The pass of ``key`` ended; ``finished`` False if it failed and wants another."""
        with self._cond:
            self._processing.pop(key, None)
            if finished:
                self._normal_owed.discard(key)
            if key in self._normal_running:
                self._normal_running.discard(key)
                if not finished:
                    self._normal_owed.add(key)
                if self._queues[PRIORITY_NORMAL]:
                    self._cond.notify()  # a worker may have waited for this slot
            if key in self._dirty:
                self._add_locked(key, self._dirty.pop(key))

    def longest_pass_seconds(self) -> float:
        """How long the oldest pass under way has run (0 when none runs): every call a pass
        makes has a timeout, so a figure that keeps growing means a worker is stuck."""
        with self._cond:
            started = min(self._processing.values(), default=None)
        return 0.0 if started is None else self._clock() - started

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return sum(len(q) for q in self._queues) + len(self._due)

    def ready(self) -> int:
        """Keys due now and waiting for a worker (not those waiting for their time)."""
        with self._cond:
            return sum(len(q) for q in self._queues)


class RetryLaterError(Exception):
    """A pass that could not finish and wants the key again, after ``seconds`` if given,
    else after the key's exponential backoff."""

    def __init__(self, reason: str, seconds: float | None = None) -> None:
        super().__init__(reason)
        self.seconds = seconds


BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 300.0


class Backoff:
    """Per-key exponential backoff for failing passes (1 s, 2 s, 4 s, ... 5 min), reset by a
    pass that succeeds. In memory: a restart starts again at 1 s, which is harmless."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[Hashable, int] = {}

    def failed(self, key: Hashable) -> float:
        with self._lock:
            count = self._failures.get(key, 0)
            self._failures[key] = count + 1
        return float(min(BACKOFF_FIRST_SECONDS * 2**count, BACKOFF_MAX_SECONDS))

    def succeeded(self, key: Hashable) -> None:
        with self._lock:
            self._failures.pop(key, None)


def run_workers(
    queue: WorkQueue, handle: Callable[[Hashable], float | None], count: int
) -> list[threading.Thread]:
    """Start ``count`` daemon threads; ``handle`` returns seconds until the key wants another pass."""
    backoff = Backoff()

    def work() -> None:
        while (key := queue.get()) is not None:
            again: float | None
            finished = False
            try:
                again = handle(key)
                finished = True
                backoff.succeeded(key)
            except RetryLaterError as exc:
                delay = backoff.failed(key)
                again = exc.seconds if exc.seconds is not None else delay
                LOG.warning("pass of %s did not finish (%s); again in %.0fs", key, exc, again)
            except Exception:  # one bad object must not stop the others
                again = backoff.failed(key)
                LOG.exception("reconcile of %s failed; retrying in %.0fs", key, again)
            finally:
                queue.done(key, finished)
            if again is not None:
                queue.add_after(key, again)

    threads = [threading.Thread(target=work, name=f"reconcile-{i}", daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    return threads
