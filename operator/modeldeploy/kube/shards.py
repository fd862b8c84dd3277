"""Which shard a resource belongs to, and which live replica should hold each shard.

Pure arithmetic, no I/O, so every replica computes the same answer from the same inputs:

- A resource's shard is a stable hash of ``namespace/name`` (SHA-256, never Python's
  ``hash()``, which is salted per process and would put one resource in a different shard
  in every replica).
- Shards go to live replicas by rendezvous (highest random weight) hashing: each shard
  goes to the replica with the highest score for the pair (shard, replica). A replica that
  joins takes only the shards it now scores highest on; one that leaves gives up only its
  own shards, spread over the others. No other shard moves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def _score(text: str) -> int:
    # The first 8 bytes of SHA-256: uniform, and the same in every process and Python.
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def shard_of(namespace: str, name: str, shard_count: int) -> int:
    """The shard (0 .. shard_count - 1) that holds the resource ``namespace/name``."""
    if shard_count < 1:
        raise ValueError(f"shard_count={shard_count} must be at least 1")
    return _score(f"{namespace}/{name}") % shard_count


def shard_owner(shard: int, replicas: Iterable[str]) -> str | None:
    """The live replica that should hold ``shard``: the highest rendezvous score, ties
    broken by identity so the choice never depends on the order replicas were listed.
    None when no replica is live."""
    candidates = sorted(set(replicas))
    if not candidates:
        return None
    return max(candidates, key=lambda replica: (_score(f"{shard}\x00{replica}"), replica))


def assigned_shards(identity: str, replicas: Iterable[str], shard_count: int) -> frozenset[int]:
    """The shards ``identity`` should hold among ``replicas`` (it counts itself as live)."""
    live = set(replicas) | {identity}
    return frozenset(shard for shard in range(shard_count) if shard_owner(shard, live) == identity)


def shard_lease_name(base: str, shard: int, shard_count: int) -> str:
    """The Lease that fences ``shard``. With one shard it is ``base`` itself, today's
    single leader Lease, so a one-shard install writes exactly what it wrote before."""
    return base if shard_count == 1 else f"{base}-shard-{shard}"
