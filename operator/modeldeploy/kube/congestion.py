"""How many first passes run at once, adapted to how long the API server makes their
Service creates wait.

Kubernetes allocates ClusterIPs one at a time, and each Service present makes the next
allocation slower; on a busy API server it falls to one or two a second. A fixed number of
first passes in that line then waits longer and longer, until the waits pass the client's
read timeout: each timed-out create gives its ClusterIP back, the retry joins the line
again, and the work done per second collapses (the performance page has the figures).

The line's pace does not depend on its length, only each wait does. So the bound follows
the waits, as TCP's window follows round trips (additive increase, multiplicative
decrease): a create slower than ``slow`` halves it, once per episode (creates sent before
the cut say nothing of the bound after it); creates faster than ``fast`` raise it by one
per bound's worth of them, up to ``ceiling``. With no Service created for ``quiet``
seconds it returns to ``ceiling``: the passes then queued are resyncs, which create none.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

LOG = logging.getLogger(__name__)
# A third of the client's 30 s read timeout: waits of this length leave room for the line
# to slow further before any create is given up.
SLOW_SECONDS = 10.0
FAST_SECONDS = 3.0
QUIET_SECONDS = 60.0


class AdaptiveBound:
    def __init__(
        self,
        ceiling: int,
        slow: float = SLOW_SECONDS,
        fast: float = FAST_SECONDS,
        quiet: float = QUIET_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ceiling < 1:
            raise ValueError(f"the ceiling must be at least 1, got {ceiling}")
        self.ceiling = ceiling
        self._slow, self._fast, self._quiet = slow, fast, quiet
        self._clock = clock
        self._lock = threading.Lock()
        self._bound = float(ceiling)
        self._last_cut = float("-inf")
        self._last_seen = float("-inf")

    def __call__(self) -> int:
        """The number of first passes that may run now."""
        with self._lock:
            if self._clock() - self._last_seen > self._quiet:
                self._bound = float(self.ceiling)
            return int(self._bound)

    def observe(self, started: float, seconds: float) -> None:
        """A Service create sent at ``started`` (this bound's clock) answered, or failed,
        after ``seconds``."""
        with self._lock:
            self._last_seen = self._clock()
            before = int(self._bound)
            if seconds > self._slow:
                if started < self._last_cut:
                    return
                self._bound = max(1.0, float(before // 2))
                self._last_cut = self._last_seen
            elif seconds < self._fast:
                self._bound = min(float(self.ceiling), self._bound + 1.0 / before)
            after = int(self._bound)
        if after != before:
            LOG.info("first passes at once: %d (a Service create took %.1f s)", after, seconds)
