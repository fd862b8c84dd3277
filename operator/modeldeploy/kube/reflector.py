"""One kind in one namespace, listed into the cache and then watched, as client-go's
reflector does: a list replaces what the cache holds, and the watch resumes from the last
resourceVersion seen, so no change (a deletion included) is ever missed.

A gap in the watch is closed by a resume (the server replays every change since the
version, deletions too) or, when the server no longer has that version (410 Gone), by a
list that replaces the cache's objects: what was deleted during the gap leaves the cache
without a periodic relist of everything.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import urllib3

from .cache import Covers, ObjectCache, covers_all
from .client import Kube
from .kinds import Kind
from .transport import ApiError, Interrupter

LOG = logging.getLogger(__name__)
GONE = 410
# The server ends each watch after this long (spread so that the watches of many
# namespaces do not all restart together); it is resumed from its last version.
WATCH_SECONDS = 300
# A kind the API server does not serve (no Gateway API installed) is asked for again.
UNSERVED_RECHECK_SECONDS = 60.0
# Waits after a failure, doubling: the API server may be restarting.
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 10.0

EventSink = Callable[[str, dict[str, Any]], None]


class Reflector:
    def __init__(
        self,
        client: Kube,
        cache: ObjectCache,
        kind: Kind,
        namespace: str,
        on_event: EventSink,
        on_relisted: Callable[[set[str]], None],
        stopping: threading.Event,
        covers: Covers = covers_all,
        until_empty: bool = False,
        guard: threading.Lock | None = None,
    ) -> None:
        self.client = client
        self.cache = cache
        self.kind = kind
        self.namespace = namespace
        self.on_event = on_event  # (type, object) of every ADDED, MODIFIED, DELETED
        self.on_relisted = on_relisted  # owners whose objects a relist found changed
        self.stopping = stopping
        # The cached objects this reflector's lists speak for (its kind's selector, when
        # another reflector watches the same kind and namespace with another one).
        self.covers = covers
        # Ends once the cache holds none of its objects: a watch of objects that only ever
        # go (children made before a label, which the operator adds) costs nothing after.
        self.until_empty = until_empty
        # Held while a list goes into the cache, and by whoever stops this reflector to put
        # another in its place: a list of the old selector that lands after the stop would
        # undo the new reflector's.
        self.guard = guard or threading.Lock()
        # Set once the first list is in the cache: readers wait for it rather than take
        # a cache not filled yet for a namespace without objects.
        self.synced = threading.Event()
        self.lists = 0
        self._interrupter = Interrupter()
        self._thread = threading.Thread(target=self.run, name=f"watch-{kind.plural}-{namespace}", daemon=True)

    def start(self) -> Reflector:
        self._thread.start()
        return self

    def interrupt(self) -> None:
        """End the watch under way now, once ``stopping`` is set: a reflector stopped in a
        quiet namespace would otherwise hold its thread and its watch until the server's
        next event or the watch's end, minutes later."""
        self._interrupter.interrupt()

    def run(self) -> None:
        backoff = BACKOFF_FIRST_SECONDS
        while not self.stopping.is_set():
            try:
                version = self._list()
                if version is None:
                    self.stopping.wait(UNSERVED_RECHECK_SECONDS)
                    continue
                backoff = BACKOFF_FIRST_SECONDS
                if self._emptied():
                    return
                self._watch_from(version)
                if self._emptied():
                    return
            except Exception as error:  # the API server may be down: list again after a wait
                LOG.warning("listing %s in %s failed: %s", self.kind.plural, self.namespace, error)
                self.stopping.wait(backoff)
                backoff = min(2 * backoff, BACKOFF_MAX_SECONDS)

    def _list(self) -> str | None:
        """The cache's objects of this kind and namespace replaced by a fresh list; the
        list's version, or None when the kind is not served."""
        since = self.cache.mark()
        items, version = self.client.list_with_version(
            self.kind, self.namespace, each=partial(self.cache.trim, self.kind.kind)
        )
        with self.guard:
            if self.stopping.is_set():
                return version  # replaced meanwhile: the list is no longer this reflector's
            touched = self.cache.replace(self.kind.kind, self.namespace, items, since, self.covers)
        self.lists += 1
        if self.synced.is_set() and touched:
            # A relist after a gap: what changed meanwhile needs a pass. (The first list
            # needs none: the pass that asked for it is waiting.)
            LOG.info("%s of %s changed during a gap: %s", self.kind.plural, self.namespace, sorted(touched))
            self.on_relisted(touched)
        self.synced.set()
        return version

    def _emptied(self) -> bool:
        """Whether this reflector ends here: it runs until empty, and the cache holds none
        of its objects."""
        if not self.until_empty or self.cache.count(self.kind.kind, self.namespace, self.covers):
            return False
        LOG.info(
            "%s of %s (%s): none left, not watched any more",
            self.kind.plural,
            self.namespace,
            self.kind.selector,
        )
        return True

    def _watch_from(self, version: str) -> None:
        """Watch from ``version`` until the server no longer has it (410 Gone): then the
        caller lists again. A watch the server ends, or a connection that breaks or goes
        silent, is resumed from the last version seen, which misses nothing."""
        backoff = BACKOFF_FIRST_SECONDS
        while not self.stopping.is_set():
            seconds = random.randint(WATCH_SECONDS * 4 // 5, WATCH_SECONDS)
            try:
                events = self.client.watch(self.kind, self.namespace, version, seconds, self._interrupter)
                for event in events:
                    kind = event.get("type")
                    body = event.get("object") or {}
                    if kind == "ERROR":
                        if body.get("code") == GONE:
                            return
                        raise WatchError(str(body.get("message") or body))
                    version = (body.get("metadata") or {}).get("resourceVersion") or version
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        self.on_event(kind, body)
                    if self.stopping.is_set() or (kind == "DELETED" and self._emptied()):
                        return
                backoff = BACKOFF_FIRST_SECONDS
            except ApiError as error:
                if error.status == GONE:
                    return
                raise  # refused (403, 404 ...): listed again after a wait, which says why
            except (urllib3.exceptions.HTTPError, OSError) as error:
                if self.stopping.is_set():
                    return  # interrupted: stopped, not broken
                LOG.info("watch of %s in %s broke (%s); resuming", self.kind.plural, self.namespace, error)
                self.stopping.wait(backoff)
                backoff = min(2 * backoff, BACKOFF_MAX_SECONDS)


class WatchError(Exception):
    """The server ended a watch with an error other than 410 Gone."""
