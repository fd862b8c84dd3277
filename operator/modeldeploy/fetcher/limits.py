"""How much one fetch may write and how long it may take: bytes, entries, compression ratio
and an overall deadline, so a model (or an archive bomb, or a stalled server) can never fill the
node or hold the pod. From the environment the operator sets on the init container
(``api.fetch_protocol`` names the variables)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..api.fetch_protocol import (
    DEADLINE_ENV,
    DEFAULT_DEADLINE_SECONDS,
    MAX_BYTES_ENV,
    MAX_ENTRIES_ENV,
    MAX_RATIO_ENV,
)
from .errors import FetchError

# Below this many bytes written the ratio is not checked: a tiny archive of small files (a
# SavedModel's saved_model.pb and an empty variables folder) may well compress far more.
RATIO_FLOOR_BYTES = 1 << 20


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 10 << 30  # the default model volume size limit, 10Gi
    max_entries: int = 100_000
    # Uncompressed over compressed: real models stay far below it, a gzip of zeros far above.
    max_ratio: float = 200.0
    # A zip's central directory is read whole into memory by zipfile: bounded before it is.
    max_central_directory_bytes: int = 64 << 20
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Limits:
        return cls(
            max_bytes=int(env.get(MAX_BYTES_ENV, cls.max_bytes)),
            max_entries=int(env.get(MAX_ENTRIES_ENV, cls.max_entries)),
            max_ratio=float(env.get(MAX_RATIO_ENV, cls.max_ratio)),
            deadline_seconds=float(env.get(DEADLINE_ENV, cls.deadline_seconds)),
        )


def deadline_message(seconds: float) -> str:
    return f"refused: the fetch took longer than its deadline of {seconds:g} s ({DEADLINE_ENV})"


class Deadline:
    """When the whole fetch must have ended: checked as entries and bytes go by, and the bound
    of every network wait (a socket timeout never reaches past it)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + seconds

    def remaining(self) -> float:
        return self._end - self._clock()

    def check(self) -> None:
        if self.remaining() <= 0:
            raise FetchError(deadline_message(self.seconds))

    def timeout(self, cap: float) -> float:
        """A wait's timeout: ``cap``, or less when the deadline is nearer."""
        self.check()
        return min(cap, self.remaining())


class Budget:
    """What one fetch has written so far, refused the moment it passes a limit."""

    def __init__(
        self, limits: Limits, compressed_bytes: int | None = None, deadline: Deadline | None = None
    ) -> None:
        self.limits = limits
        self.compressed = compressed_bytes
        self.deadline = deadline
        self.bytes = 0
        self.entries = 0

    def entry(self, name: str) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise FetchError(f"refused: more than {self.limits.max_entries} entries (at {name[:100]!r})")
        if self.deadline is not None:
            self.deadline.check()

    def wrote(self, count: int) -> None:
        self.bytes += count
        if self.bytes > self.limits.max_bytes:
            raise FetchError(
                f"refused: the model is larger than {self.limits.max_bytes} bytes "
                "(spec.runtime.modelVolumeSizeLimit)"
            )
        if (
            self.compressed
            and self.bytes > self.limits.max_ratio * max(self.compressed, 1)
            and self.bytes > RATIO_FLOOR_BYTES
        ):
            raise FetchError(
                f"refused: the archive expands more than {self.limits.max_ratio:g} times (an archive bomb?)"
            )
        if self.deadline is not None:
            self.deadline.check()
