"""Which children a replica watches: the shard label each child carries, and the label
selector for the shards a replica holds. Pure; with one shard (or every shard held) there
is no label and no selector, so such a replica watches and writes exactly what it did
before shards."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..api.names import LABEL_SHARD
from ..kube.shards import shard_of

# A selector that matches no child: a replica that holds no shard watches none. (``in ()``
# is refused by the API server, and no child's shard label is ever this value.)
NO_SHARD = "none"
# Children made before the label existed (an install that ran one shard): see ``unlabelled``.
UNLABELLED = f"!{LABEL_SHARD}"


def shard_label_value(shard: int) -> str:
    return str(shard)


def shard_labels(namespace: str, name: str, shard_count: int) -> dict[str, str]:
    """The label the children of ``namespace/name`` carry: none with one shard, so a
    default install's pod templates (and so its pods) stay as they were."""
    if shard_count <= 1:
        return {}
    return {LABEL_SHARD: shard_label_value(shard_of(namespace, name, shard_count))}


def held_selector(held: Iterable[int], shard_count: int) -> str | None:
    """The label selector of the children of the ``held`` shards; None when they are all
    the shards (watch everything, labelled or not, as one replica always did)."""
    shards = sorted(set(held))
    if shard_count <= 1 or len(shards) >= shard_count:
        return None
    values = ",".join(shard_label_value(s) for s in shards) or NO_SHARD
    return f"{LABEL_SHARD} in ({values})"


def combined(*selectors: str | None) -> str:
    """Selectors that must all match, as one (an empty one matches everything)."""
    return ",".join(s for s in selectors if s)


def is_labelled(body: dict[str, Any] | None) -> bool:
    """Whether a child carries a shard label (of any shard)."""
    return LABEL_SHARD in (((body or {}).get("metadata") or {}).get("labels") or {})


def unlabelled(body: dict[str, Any] | None) -> bool:
    """A child without the label: made while the install ran one shard. The pass applies it
    again with the label; until then it is watched apart (``NamespaceWatches``)."""
    return not is_labelled(body)


def shard_label(body: dict[str, Any] | None) -> str | None:
    """The shard label a child carries, if any."""
    labels: dict[str, str] = ((body or {}).get("metadata") or {}).get("labels") or {}
    return labels.get(LABEL_SHARD)


def labelled_in(shards: frozenset[int]) -> Callable[[dict[str, Any] | None], bool]:
    """Whether a child carries the label of one of ``shards``: what a watch of those
    shards' children speaks for (its lists remove no other shard's child)."""
    values = frozenset(shard_label_value(s) for s in shards)
    return lambda body: shard_label(body) in values


def labelled_outside(shards: frozenset[int]) -> Callable[[dict[str, Any] | None], bool]:
    """Whether a child carries the label of a shard not in ``shards``: one let go."""
    values = frozenset(shard_label_value(s) for s in shards)
    return lambda body: (label := shard_label(body)) is not None and label not in values
