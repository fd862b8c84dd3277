"""Shards wired into the operator: which passes this replica may run, and what it writes.

A pass runs on a worker thread for one ModelDeployment; the parts it calls (the applier,
the reconciler's gates) ask ``leading()`` with no argument before each write, as they did
under one leader. ``CURRENT_PASS`` tells them which resource the pass on this thread is
for, so each write is checked against that resource's shard at the moment it is made. A
``leading()`` asked outside a pass answers False: nothing unattributed is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from ..kube.shard_holder import ShardHolder
from ..kube.shards import shard_of

Key = tuple[str, str]
CURRENT_PASS: ContextVar[Key | None] = ContextVar("current_pass", default=None)


@contextmanager
def pass_for(key: Key) -> Iterator[None]:
    """Attribute the writes made on this thread within the block to ``key``."""
    token = CURRENT_PASS.set(key)
    try:
        yield
    finally:
        CURRENT_PASS.reset(token)


@dataclass(frozen=True)
class Shards:
    holder: ShardHolder

    @property
    def identity(self) -> str:
        return self.holder.identity

    def shard(self, key: Key) -> int:
        namespace, name = key
        return shard_of(namespace, name, self.holder.shard_count)

    def holds_key(self, key: Key) -> bool:
        return self.holder.holds(self.shard(key))

    def leading(self) -> bool:
        """Whether the pass on this thread may still write: its resource's shard is held."""
        key = CURRENT_PASS.get()
        return key is not None and self.holds_key(key)

    def placement(self, namespace: str, name: str) -> tuple[int | None, str | None]:
        """What this replica records in the status it writes: the shard, and itself."""
        return self.shard((namespace, name)), self.identity

    def held_count(self) -> int:
        return len(self.holder.held())

    def health(self) -> str:
        """What /healthz says of this replica's shards. A replica that holds none is healthy:
        it stands by for the shards of a replica that goes. Raises ``ShardsUnhealthyError``
        when it holds shards it has not renewed within the renew deadline (the API server
        out of its reach): a restart, as for a leader that cannot renew, clears the way."""
        if not self.holder.healthy():
            raise ShardsUnhealthyError(f"{self.identity} holds shards it has not renewed in time")
        return f"{self.identity}: holds {self.held_count()} of {self.holder.shard_count} shards"


class ShardsUnhealthyError(Exception):
    """A replica holds shards whose Leases it could not renew in time."""
