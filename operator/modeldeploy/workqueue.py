"""A de-duplicating work queue with delayed adds, drained by worker threads.

One key is never processed by two workers at once; a key added while it is
being processed runs once more afterwards. This is what serialises all work on
one ModelDeployment without a lock per object.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Hashable

LOG = logging.getLogger(__name__)


class WorkQueue:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._queue: list[Hashable] = []
        self._queued: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._dirty: set[Hashable] = set()
        self._delayed: list[tuple[float, int, Hashable]] = []
        self._seq = 0
        self._closed = False

    def add(self, key: Hashable) -> None:
        with self._cond:
            if key in self._processing:
                self._dirty.add(key)
            elif key not in self._queued:
                self._queued.add(key)
                self._queue.append(key)
                self._cond.notify()

    def add_after(self, key: Hashable, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            self._seq += 1
            heapq.heappush(self._delayed, (self._clock() + delay, self._seq, key))
            self._cond.notify()

    def _promote_due(self) -> float | None:
        """Move due delayed keys to the queue; seconds until the next one is due."""
        now = self._clock()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            if key in self._processing:
                self._dirty.add(key)
            elif key not in self._queued:
                self._queued.add(key)
                self._queue.append(key)
        return self._delayed[0][0] - now if self._delayed else None

    def get(self) -> Hashable | None:
        """The next key to process, blocking; None once the queue is closed."""
        with self._cond:
            while True:
                if self._closed:
                    return None
                wait = self._promote_due()
                if self._queue:
                    key = self._queue.pop(0)
                    self._queued.discard(key)
                    self._processing.add(key)
                    return key
                self._cond.wait(timeout=wait)

    def done(self, key: Hashable) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                if key not in self._queued:
                    self._queued.add(key)
                    self._queue.append(key)
                    self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue) + len(self._delayed)


def run_workers(
    queue: WorkQueue, handle: Callable[[Hashable], float | None], count: int
) -> list[threading.Thread]:
    """Start ``count`` daemon threads; ``handle`` returns seconds until the key wants another pass."""

    def work() -> None:
        while (key := queue.get()) is not None:
            try:
                again = handle(key)
            except Exception:  # one bad object must not stop the others
                LOG.exception("reconcile of %s failed; retrying in 5s", key)
                again = 5.0
            finally:
                queue.done(key)
            if again is not None:
                queue.add_after(key, again)

    threads = [threading.Thread(target=work, name=f"reconcile-{i}", daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    return threads
