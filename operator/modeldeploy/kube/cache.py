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
# What of a body the cache keeps: (kind, body) -> the body to store.
Trim = Callable[[str, dict[str, Any]], dict[str, Any]]


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

    def upsert(self, kind: str, body: dict[str, Any]) -> bool:
        """Store ``body`` unless the cache already holds a newer version of the object.

        False when the cache held exactly this version already: the watch echoing one
        of our own writes, which went through to the cache when it was made.
        """
        body = self._trim(kind, body)
        meta = body.get("metadata", {})
        key = (kind, meta.get("namespace", ""), meta.get("name", ""))
        owner = self._owner(body)
        with self._lock:
            held = self._objects.get(key)
            if held is not None and _same_version(held, body):
                return False
            if held is not None and _newer(held, body):
                return True
            self._objects[key] = body
            self._bump(key)
            if owner is not None and kind != self.owner_kind:
                self._children.setdefault((key[1], owner), set()).add(key)
            return True

    def remove(self, kind: str, namespace: str, name: str) -> None:
        key = (kind, namespace, name)
        with self._lock:
            body = self._objects.pop(key, None)
            self._bump(key)
            owner = self._owner(body)
            if owner is not None:
                children = self._children.get((namespace, owner))
                if children is not None:
                    children.discard(key)
                    if not children:
                        del self._children[(namespace, owner)]

    def replace(self, kind: str, namespace: str, items: list[dict[str, Any]], since: int) -> set[str]:
        """Make the cache hold ``items`` for ``kind`` in ``namespace``: a fresh list is the
        truth. Objects deleted during a watch gap, which no DELETED event will ever report,
        are dropped; and a list wins over anything held, whatever its resourceVersion,
        since versions restart after an etcd restore.

        Except what changed after ``since`` (a ``mark`` taken before the list was asked
        for): a watch event or our own write-through that came while the list was on its
        way is newer than the list. Undoing it put an older status back in the cache, and
        the next pass computed from it.

        Returns the names of the owners whose objects were removed or changed (of an
        owner-kind list, the owners themselves).
        """
        listed = {(kind, namespace, item.get("metadata", {}).get("name", "")): item for item in items}
        touched: set[str] = set()
        with self._lock:
            held = [key for key in self._objects if key[0] == kind and key[1] == namespace]
        for key in held:
            if key not in listed and not self._changed_after(key, since):
                owner = self._owner(self.get(*key))
                self.remove(*key)
                if owner:
                    touched.add(owner)
        for key, item in listed.items():
            old = self.get(*key)
            if self._changed_after(key, since) or (old is not None and _same_version(old, item)):
                continue
            with self._lock:
                self._objects.pop(key, None)  # the list wins, whatever its version
            self.upsert(kind, item)
            owner = self._owner(item) if kind != self.owner_kind else key[2]
            if owner:
                touched.add(owner)
        self._forget_removed(kind, namespace, since)
        return touched

    def _changed_after(self, key: Key, since: int) -> bool:
        with self._lock:
            return self._changed.get(key, 0) > since

    def changed_since(self, kind: str, namespace: str, name: str, since: int) -> bool:
        """Whether the object changed in the cache after ``since`` (a ``mark``): then
        ``replace`` keeps what the cache holds, whatever a list taken meanwhile says."""
        return self._changed_after((kind, namespace, name), since)

    def _forget_removed(self, kind: str, namespace: str, since: int) -> None:
        """Drop the change counts of removed objects that a list has since accounted for."""
        with self._lock:
            gone = [
                key
                for key, stamp in self._changed.items()
                if key[0] == kind and key[1] == namespace and stamp <= since and key not in self._objects
            ]
            for key in gone:
                del self._changed[key]

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


def _same_version(held: dict[str, Any], incoming: dict[str, Any]) -> bool:
    version = held.get("metadata", {}).get("resourceVersion")
    return version is not None and version == incoming.get("metadata", {}).get("resourceVersion")


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
