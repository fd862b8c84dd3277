"""How much one fetch may write: bytes, entries and compression ratio, so a model (or an
archive bomb) can never fill the node. From the environment the operator sets on the
init container (``api.fetch_protocol`` names the variables)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ..api.fetch_protocol import MAX_BYTES_ENV, MAX_ENTRIES_ENV, MAX_RATIO_ENV
from .errors import FetchError


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 10 << 30  # the default model volume size limit, 10Gi
    max_entries: int = 100_000
    # Uncompressed over compressed: real models stay far below it, a gzip of zeros far above.
    max_ratio: float = 200.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Limits:
        return cls(
            max_bytes=int(env.get(MAX_BYTES_ENV, cls.max_bytes)),
            max_entries=int(env.get(MAX_ENTRIES_ENV, cls.max_entries)),
            max_ratio=float(env.get(MAX_RATIO_ENV, cls.max_ratio)),
        )


class Budget:
    """What one fetch has written so far, refused the moment it passes a limit."""

    def __init__(self, limits: Limits, compressed_bytes: int | None = None) -> None:
        self.limits = limits
        self.compressed = compressed_bytes
        self.bytes = 0
        self.entries = 0

    def entry(self, name: str) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise FetchError(f"refused: more than {self.limits.max_entries} entries (at {name[:100]!r})")

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
            and self.bytes > 1 << 20
        ):
            raise FetchError(
                f"refused: the archive expands more than {self.limits.max_ratio:g} times (an archive bomb?)"
            )
