"""What the watches have shown: the latest body of every watched object, with the children
of each owner indexed by the label that names it.

Readers read from here instead of the API server (as controller-runtime's informers do),
so a pass costs requests only for what it writes. Stored bodies are the watch events' own
freshly parsed objects, trimmed but never deep-copied: nobody may change them, since
copying every event's body would cost more than the rest of its handling.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

Key = tuple[str, str, str]  # kind, namespace, name
# Change stamps of removed objects kept at most: pods come and go for good, and a kind
# whose watch never breaks is never listed again to account for them.
MAX_REMOVED_STAMPS = 4096
# What of a body the cache keeps: (kind, body) -> the body to store.
Trim = Callable[[str, dict[str, Any]], dict[str, Any]]
# Which held objects a list (or a watch's deletion) speaks for, when several label-selected
# watches share one kind and namespace: an object outside it is another watch's to remove.
Covers = Callable[[dict[str, Any]], bool]


# The key a trim sets on a body it kept only part of (see ``is_partial``).
PARTIAL = "partial"


def covers_all(body: dict[str, Any]) -> bool:
    return True


def is_partial(body: dict[str, Any] | None) -> bool:
    """Whether the cache holds only part of this body: a trim may keep an object's identity
    alone (a ModelDeployment of a shard another replica holds). A whole body of the same
    version replaces it, where an echo of a whole stored body changes nothing."""
    return bool(body and body.get(PARTIAL))


def keep_whole(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    return body


class ObjectCache:
    def __init__(self, owner_label: str, owner_kind: str, trim: Trim = keep_whole) -> None:
        """``owner_label``: the label whose value names a child's owner (an object of
        ``owner_kind`` in the child's namespace). ``trim``: what of a body is stored; lists
        apply it too (see ``trim``), so each page is trimmed as it arrives."""
        self.owner_label = owner_label
        self.owner_kind = owner_kind
        self._trim = trim
        self._lock = threading.Lock()
        self._objects: dict[Key, dict[str, Any]] = {}
        # (namespace, owner name) -> keys of children labelled with it.
        self._children: dict[tuple[str, str], set[Key]] = {}
        # A counter bumped by every stored change, and the count at each key's last change
        # (removed keys too): a list taken before a change must not undo it (see replace).
        self._stamp = 0
        self._changed: dict[Key, int] = {}
        # Keys of removed objects whose stamp is still kept, oldest first; and the newest
        # stamp dropped to stay under MAX_REMOVED_STAMPS (see _changed_after).
        self._removed: dict[Key, None] = {}
        self._dropped_upto = 0

    def trim(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` as the cache would store it."""
        return self._trim(kind, body)

    def mark(self) -> int:
        """Now, in the cache's own count of changes: take it before a list for ``replace``."""
        with self._lock:
            return self._stamp

    def _bump(self, key: Key) -> None:
        self._stamp += 1
        self._changed[key] = self._stamp
        self._removed.pop(key, None)

    def _bump_removed(self, key: Key) -> None:
        """Stamp a removal, keeping the stamps of at most MAX_REMOVED_STAMPS removed objects."""
        self._bump(key)
        self._removed[key] = None
        while len(self._removed) > MAX_REMOVED_STAMPS:
            oldest = next(iter(self._removed))
            del self._removed[oldest]
            self._dropped_upto = max(self._dropped_upto, self._changed.pop(oldest, 0))

    def upsert(self, kind: str, body: dict[str, Any]) -> bool:
        """Store ``body`` unless the cache already holds a newer version of the object.

        False when the cache held exactly this version already: the watch echoing one
        of our own writes, which went through to the cache when it was made.
        """
        body = self._trim(kind, body)
        with self._lock:
            return self._upsert_locked(kind, body)

    def _upsert_locked(self, kind: str, body: dict[str, Any]) -> bool:
        key = _key(kind, body)
        held = self._objects.get(key)
        if held is not None and _same_version(held, body) and not _completes(held, body):
            return False
        if held is not None and _newer(held, body):
            return True
        self._store_locked(key, body)
        return True

    def _store_locked(self, key: Key, body: dict[str, Any]) -> None:
        self._unindex_locked(key, self._objects.get(key))
        self._objects[key] = body
        self._bump(key)
        owner = self._owner(body)
        if owner is not None and key[0] != self.owner_kind:
            self._children.setdefault((key[1], owner), set()).add(key)

    def remove(self, kind: str, namespace: str, name: str, covers: Covers = covers_all) -> None:
        """Drop the object, if what the cache holds of it is ``covers``'s: a watch sees an
        object leave its selector (a label added) as a deletion, while another watch may
        already have stored it with the label."""
        with self._lock:
            held = self._objects.get((kind, namespace, name))
            if held is None or covers(held):
                self._remove_locked((kind, namespace, name))

    def _remove_locked(self, key: Key) -> None:
        self._unindex_locked(key, self._objects.pop(key, None))
        self._bump_removed(key)

    def _unindex_locked(self, key: Key, body: dict[str, Any] | None) -> None:
        owner = self._owner(body)
        children = self._children.get((key[1], owner)) if owner is not None else None
        if children is not None:
            children.discard(key)
            if not children:
                del self._children[(key[1], owner or "")]

    def replace(
        self, kind: str, namespace: str, items: list[dict[str, Any]], since: int, covers: Covers = covers_all
    ) -> set[str]:
        """Make the cache hold ``items`` for ``kind`` in ``namespace``: a fresh list is the
        truth. Objects deleted during a watch gap, which no DELETED event will ever report,
        are dropped; and a list wins over anything held, whatever its resourceVersion,
        since versions restart after an etcd restore.

        Except what changed after ``since`` (a ``mark`` taken before the list was asked
        for): a watch event or our own write-through that came while the list was on its
        way is newer than the list. Undoing it put an older status back in the cache, and
        the next pass computed from it.

        ``covers``: the held objects this list speaks for (the others, another watch's,
        stay as they are).

        Returns the names of the owners whose objects were removed or changed (of an
        owner-kind list, the owners themselves).
        """
        items = [self._trim(kind, item) for item in items]
        listed = {_key(kind, item, namespace): item for item in items}
        touched: set[str] = set()
        # One lock for the whole: a change that lands between a check and the write it
        # allows would be undone by the list.
        with self._lock:
            held = [key for key in self._objects if key[0] == kind and key[1] == namespace]
            for key in held:
                if key not in listed and covers(self._objects[key]) and not self._changed_after(key, since):
                    owner = self._owner(self._objects.get(key))
                    self._remove_locked(key)
                    if owner:
                        touched.add(owner)
            for key, item in listed.items():
                old = self._objects.get(key)
                if self._changed_after(key, since) or (
                    old is not None and _same_version(old, item) and not _completes(old, item)
                ):
                    continue
                self._store_locked(key, item)  # the list wins, whatever its version
                owner = self._owner(item) if kind != self.owner_kind else key[2]
                if owner:
                    touched.add(owner)
            self._forget_removed(kind, namespace, since)
        return touched

    def _changed_after(self, key: Key, since: int) -> bool:
        """Under the lock. A key without a stamp changed after ``since`` only if stamps
        newer than ``since`` were dropped: then it may be one of them, a removal the list
        must not undo (what the list adds instead waits for its next change or list)."""
        stamp = self._changed.get(key)
        if stamp is None:
            return since < self._dropped_upto
        return stamp > since

    def changed_since(self, kind: str, namespace: str, name: str, since: int) -> bool:
        """Whether the object changed in the cache after ``since`` (a ``mark``): then
        ``replace`` keeps what the cache holds, whatever a list taken meanwhile says."""
        with self._lock:
            return self._changed_after((kind, namespace, name), since)

    def _forget_removed(self, kind: str, namespace: str, since: int) -> None:
        """Under the lock: drop the change counts of removed objects that a list has since
        accounted for."""
        gone = [
            key
            for key in self._removed
            if key[0] == kind and key[1] == namespace and self._changed.get(key, 0) <= since
        ]
        for key in gone:
            del self._changed[key]
            del self._removed[key]

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._objects.get((kind, namespace, name))

    def labelled(self, kind: str, namespace: str, owner: str) -> list[dict[str, Any]]:
        """Objects of one kind labelled with the owner's name."""
        with self._lock:
            keys = [k for k in self._children.get((namespace, owner), ()) if k[0] == kind]
            return [self._objects[k] for k in keys if k in self._objects]

    def children(self, kind: str, namespace: str, owner: str, owner_uid: str) -> list[dict[str, Any]]:
        """Labelled objects that this incarnation of the owner owns (by owner reference)."""
        return [
            body
            for body in self.labelled(kind, namespace, owner)
            if any(
                ref.get("uid") == owner_uid for ref in body.get("metadata", {}).get("ownerReferences") or []
            )
        ]

    def count(self, kind: str, namespace: str, covers: Covers = covers_all) -> int:
        """How many objects of ``kind`` in ``namespace`` the cache holds that ``covers`` takes."""
        with self._lock:
            return sum(
                1 for key, body in self._objects.items() if key[:2] == (kind, namespace) and covers(body)
            )

    def counts(self) -> dict[str, int]:
        """kind -> objects held: what the cache costs, by kind."""
        with self._lock:
            found: dict[str, int] = {}
            for kind, _, _ in self._objects:
                found[kind] = found.get(kind, 0) + 1
            return found

    def trim_again(self, kind: str, namespace: str, name: str) -> None:
        """Hold only part of a whole body if the trim keeps only part of it now (its shard
        handed to another replica): what it kept whole otherwise stays until its next event."""
        held = self.get(kind, namespace, name)
        if held is None or is_partial(held):
            return
        trimmed = self._trim(kind, held)  # outside the lock: a trim may ask who holds what
        if not is_partial(trimmed):
            return
        with self._lock:
            if self._objects.get((kind, namespace, name)) is held:  # else it changed meanwhile
                self._store_locked((kind, namespace, name), trimmed)

    def partial_names(self, kind: str, namespace: str) -> list[str]:
        """Names of the objects of ``kind`` in ``namespace`` held only in part."""
        with self._lock:
            return [
                key[2]
                for key, body in self._objects.items()
                if key[:2] == (kind, namespace) and is_partial(body)
            ]

    def owner_keys(self) -> list[tuple[str, str]]:
        """(namespace, name) of every cached object of the owner kind."""
        with self._lock:
            return [(ns, name) for kind, ns, name in self._objects if kind == self.owner_kind]

    def _owner(self, body: dict[str, Any] | None) -> str | None:
        labels: dict[str, str] = ((body or {}).get("metadata", {}).get("labels")) or {}
        return labels.get(self.owner_label)

    def __len__(self) -> int:
        with self._lock:
            return len(self._objects)


def _key(kind: str, body: dict[str, Any], namespace: str | None = None) -> Key:
    meta = body.get("metadata", {})
    return (kind, meta.get("namespace", "") if namespace is None else namespace, meta.get("name", ""))


def _same_version(held: dict[str, Any], incoming: dict[str, Any]) -> bool:
    version = held.get("metadata", {}).get("resourceVersion")
    return version is not None and version == incoming.get("metadata", {}).get("resourceVersion")


def _completes(held: dict[str, Any], incoming: dict[str, Any]) -> bool:
    """Whether ``incoming`` is the whole of a body the cache holds only part of."""
    return is_partial(held) and not is_partial(incoming)


def _newer(held: dict[str, Any], incoming: dict[str, Any]) -> bool:
    """Whether ``held`` is a later version than ``incoming``. resourceVersions are opaque
    to clients in general; the API server's are etcd revisions, compared as numbers,
    and anything else is treated as not newer (the incoming body wins)."""
    try:
        held_rv = int(held.get("metadata", {}).get("resourceVersion", ""))
        incoming_rv = int(incoming.get("metadata", {}).get("resourceVersion", ""))
    except ValueError:
        return False
    return held_rv > incoming_rv
