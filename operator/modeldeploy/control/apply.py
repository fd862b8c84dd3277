"""The apply engine: makes the cluster hold a desired state, sending only what changed.

Children go out by server-side apply (field manager ``modeldeploy``) with the hash
of their manifest in a label. A child whose live copy (watched kinds) or
memo (unwatched kinds) carries the same hash is skipped, so a converged resource
costs no request. Passes that plan the same children as the last complete apply
skip building them altogether, unless a watched child drifted since.

No watch reports a change to an unwatched child (a ConfigMap, a Service): now and then
(``recheck``) each resource's next pass reads their versions, and applies again those
that someone changed or deleted since our apply. A converged cluster gets reads, never a
write.

Fenced against a replica that no longer leads: leadership is asked before every write,
and the update of a child the cache holds is conditional on the version seen (``_fence``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from ..api.conditions import Reason
from ..api.names import (
    ANNOTATION_APPLIED_HASH,
    FIELD_MANAGER,
    HANDOVER_FIELD_MANAGER,
    LABEL_APPLIED_HASH,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    MANAGED_BY,
)
from ..api.spec import ModelDeployment
from ..children.deployment import build_replica_handover
from ..children.desired import DesiredState
from ..children.meta import Manifest
from ..kube.cache import ObjectCache
from ..kube.client import Kube
from ..kube.transport import ApiError
from ..kube.workqueue import RetryLaterError
from .kinds import WATCHED_CHILDREN

LOG = logging.getLogger(__name__)

Owner = tuple[str, str]  # namespace, ModelDeployment name
ChildKey = tuple[str, str]  # kind, name (in the owner's namespace)
# A watched child as applied: (kind, namespace, name, hash, labels).
AppliedChild = tuple[str, str, str, str, tuple[tuple[str, str], ...]]


def manifest_hash(manifest: Manifest) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:20]


def applied_hash(live: dict[str, Any] | None) -> str | None:
    """The manifest hash the operator labelled a live child with, if any (else the one an
    operator before the label annotated it with: the same manifest has the same hash)."""
    meta = (live or {}).get("metadata", {})
    labels: dict[str, str] = meta.get("labels") or {}
    annotations: dict[str, str] = meta.get("annotations") or {}
    return labels.get(LABEL_APPLIED_HASH) or annotations.get(ANNOTATION_APPLIED_HASH)


def labels_kept(live: dict[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Every label the operator applied is still on the live child. The hash label alone
    misses a label edited by hand (a version label, which says which version a child
    runs): such a child is applied again."""
    live_labels: dict[str, str] = (live or {}).get("metadata", {}).get("labels") or {}
    return all(live_labels.get(key) == value for key, value in labels.items())


def holds_all(live: Any, desired: Any) -> bool:
    """Whether ``live`` holds every field of ``desired`` with its value (lists item by item,
    the server's defaults beside them ignored): applying ``desired`` would change none."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(k in live and holds_all(live[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(live) == len(desired)
            and all(holds_all(item, wanted) for item, wanted in zip(live, desired, strict=True))
        )
    return bool(live == desired)


def owns_replicas(deployment: dict[str, Any] | None) -> bool:
    """Whether the operator's own apply still owns spec.replicas of a live Deployment."""
    for entry in (deployment or {}).get("metadata", {}).get("managedFields") or []:
        if entry.get("manager") == FIELD_MANAGER and entry.get("operation") == "Apply":
            return "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {})
    return False


class ApplyRejectedError(Exception):
    """The API server refused a child (invalid, forbidden): retrying the same manifest cannot help."""

    reason: str = Reason.APPLY_REJECTED

    def __init__(self, kind: str, name: str, status: int, message: str) -> None:
        super().__init__(f"the API server refused {kind} {name} ({status}): {message}"[:MESSAGE_LIMIT])


class ChildOwnedByAnotherError(ApplyRejectedError):
    """A child's name is taken by an object the resource does not own: applied by force it
    would become the resource's, and be deleted with it."""

    reason: str = Reason.CHILD_OWNED_BY_ANOTHER

    def __init__(self, kind: str, name: str, holder: str) -> None:
        Exception.__init__(self, f"{kind} {name} exists and {holder}: not taking it over"[:MESSAGE_LIMIT])


def controller_of(live: dict[str, Any]) -> dict[str, Any] | None:
    """The owner reference marked controller, if any."""
    refs = live.get("metadata", {}).get("ownerReferences") or []
    return next((ref for ref in refs if ref.get("controller")), None)


def foreign_holder(live: dict[str, Any] | None, manifest: Manifest) -> str | None:
    """Who holds ``live`` if not the owner ``manifest`` names, worded for a condition;
    None when the child is free or the owner's: absent, controlled by the owner, or
    controlled by nobody yet labelled as the owner's (a child it orphaned)."""
    if live is None:
        return None
    ours = controller_of(manifest) or {}
    controller = controller_of(live)
    if controller is not None:
        if controller.get("uid") == ours.get("uid"):
            return None
        return f"is controlled by {controller.get('kind', '?')} {controller.get('name', '?')}"
    labels = live.get("metadata", {}).get("labels") or {}
    if labels.get(LABEL_MANAGED_BY) == MANAGED_BY and labels.get(LABEL_NAME) == ours.get("name"):
        return None
    return "is not managed by modeldeploy"


def ours_to_delete(live: dict[str, Any], owner_uid: str) -> bool:
    """Whether the owner controls ``live``, or is its only kind of owner (no controller)."""
    controller = controller_of(live)
    if controller is not None:
        return bool(controller.get("uid") == owner_uid)
    return any(ref.get("uid") == owner_uid for ref in live.get("metadata", {}).get("ownerReferences") or [])


# Answers that say the manifest itself (or our rights to it) is the problem, not the moment.
REFUSALS = (400, 403, 404, 422)
MESSAGE_LIMIT = 1024


class NotLeadingError(Exception):
    """This replica stopped leading during the pass: it writes nothing more."""


class Applier:
    def __init__(
        self,
        kube: Kube,
        cache: ObjectCache,
        leading: Callable[[], bool] = lambda: True,
        service_timed: Callable[[float, float], None] = lambda started, seconds: None,
    ) -> None:
        self.kube = kube
        self.cache = cache
        # With leader election: asked before each write, so a replica that lost its lease
        # (paused past its renew deadline, say) stops at the next child, not after all.
        self.leading = leading
        # Told when each Service apply was sent (time.monotonic) and how long it took,
        # answered or not: the API server allocates ClusterIPs one at a time, and the first
        # passes' bound follows that line's waits (kube.congestion).
        self.service_timed = service_timed
        self._lock = threading.Lock()
        # owner -> (kind, name) -> hash last applied. A restart loses it and re-applies
        # once, which server-side apply makes harmless.
        self._applied: dict[Owner, dict[ChildKey, str]] = {}
        # owner -> what its last complete apply was computed from, and the watched
        # children it left behind with their hashes.
        self._planned: dict[Owner, tuple[Hashable, list[AppliedChild]]] = {}
        # owner -> children seen to be its own (or free) before they were first applied:
        # each is looked at once, not at every resync (server-side apply by force would
        # take a namesake from whoever holds it).
        self._claimed: dict[Owner, set[ChildKey]] = {}
        # owner -> (kind, name) -> the resourceVersion our last apply of an unwatched
        # child left; and the owners whose next pass compares them with the live ones.
        self._versions: dict[Owner, dict[ChildKey, str]] = {}
        self._unchecked: set[Owner] = set()

    def forget(self, namespace: str, name: str) -> None:
        """Drop the memo of a deleted ModelDeployment's children."""
        with self._lock:
            for memo in (self._applied, self._planned, self._claimed, self._versions):
                memo.pop((namespace, name), None)
            self._unchecked.discard((namespace, name))

    def recheck(self) -> None:
        """Periodic resync: each resource's next pass reads its unwatched children's
        versions, and applies again what drifted (see ``_check_unwatched``)."""
        with self._lock:
            self._unchecked = set(self._versions)

    def ensure(self, md: ModelDeployment, fingerprint: Hashable, desire: Callable[[], DesiredState]) -> None:
        """Make the cluster hold ``desire()``, unless it already holds what the same
        ``fingerprint`` (everything the desired state is built from) made last time."""
        owner = (md.namespace, md.name)
        self._check_unwatched(owner)
        with self._lock:
            planned = self._planned.get(owner)
        if planned is not None and planned[0] == fingerprint and self._intact(planned[1]):
            return
        applied = self._apply_state(md, desire())
        with self._lock:
            self._planned[owner] = (fingerprint, applied)

    def _check_unwatched(self, owner: Owner) -> None:
        """If a resync asked for it: forget what we applied of each unwatched child whose
        live version is not the one our apply left (changed by hand, deleted), so this
        pass applies it again. One metadata read per child; kept asked on a failed read."""
        with self._lock:
            if owner not in self._unchecked:
                return
            self._unchecked.discard(owner)
            versions = dict(self._versions.get(owner, {}))
        try:
            drifted = [
                key for key, seen in versions.items() if self.kube.version(key[0], owner[0], key[1]) != seen
            ]
        except Exception:
            with self._lock:
                self._unchecked.add(owner)
            raise
        if not drifted:
            return
        LOG.info(
            "%s/%s: %s changed since applied; applying again", *owner, ", ".join(" ".join(k) for k in drifted)
        )
        with self._lock:
            self._planned.pop(owner, None)
            for key in drifted:
                self._applied.get(owner, {}).pop(key, None)
                self._versions.get(owner, {}).pop(key, None)

    def _intact(self, children: list[AppliedChild]) -> bool:
        """Every watched child is live and still carries the hash and labels we applied."""
        return all(
            applied_hash(live := self.cache.get(kind, namespace, name)) == digest
            and labels_kept(live, dict(labels))
            for kind, namespace, name, digest, labels in children
        )

    def _apply_state(self, md: ModelDeployment, state: DesiredState) -> list[AppliedChild]:
        owner = (md.namespace, md.name)
        created: list[tuple[Manifest, int]] = []
        for deployment, size in state.handovers:
            live = self.cache.get("Deployment", md.namespace, deployment["metadata"]["name"])
            if live is None:
                created.append((deployment, size))  # created below at the default of 1
            elif owns_replicas(live):
                self._hand_over(deployment, size)  # before we let go of the field
        applied: list[AppliedChild] = []
        for child in state.children:
            digest = self._apply_if_changed(owner, child)
            if child["kind"] in WATCHED_CHILDREN:
                labels = tuple(sorted((child["metadata"].get("labels") or {}).items()))
                applied.append((child["kind"], md.namespace, child["metadata"]["name"], digest, labels))
        for deployment, size in created:
            self._hand_over(deployment, size)
        for kind in state.absent_kinds:
            for live in self.cache.children(kind, md.namespace, md.name, md.uid):
                self._delete(owner, md.uid, kind, live["metadata"]["name"])
        for kind, name in state.deletions:
            self._delete(owner, md.uid, kind, name)
        return applied

    def _apply_if_changed(self, owner: Owner, manifest: Manifest) -> str:
        """Apply unless the live object (or our memo) has this exact manifest; its hash."""
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        digest = manifest_hash(manifest)
        with self._lock:
            remembered = self._applied.get(owner, {}).get((kind, name)) == digest
        if kind in WATCHED_CHILDREN:
            live = self.cache.get(kind, owner[0], name)
            live_hash = applied_hash(live)
            if live_hash == digest and labels_kept(live, manifest["metadata"].get("labels") or {}):
                remembered = True
            elif live is None or live_hash is not None:
                remembered = False  # gone, or changed since: apply again
        if remembered:
            return digest
        live = self._claim(owner, manifest)
        if kind not in WATCHED_CHILDREN and live is not None and self._adopt(owner, manifest, digest, live):
            return digest
        meta = manifest["metadata"]
        # A copy: a builder's labels dict may be another field's too (a selector).
        meta["labels"] = {**(meta.get("labels") or {}), LABEL_APPLIED_HASH: digest}
        fenced = self._fence(
            manifest, self.cache.get(kind, owner[0], name) if kind in WATCHED_CHILDREN else None
        )
        try:
            result = self._send(fenced)
        except ApiError as exc:
            if fenced is not manifest and exc.status in (404, 409):
                raise RetryLaterError(f"{kind} {name} changed since this pass read it", 0.05) from None
            if exc.status in REFUSALS:
                raise ApplyRejectedError(kind, name, exc.status, exc.message) from None
            raise
        if kind in WATCHED_CHILDREN:
            # Write-through: the next pass must not see the pre-apply object and apply again.
            self.cache.upsert(kind, result)
        LOG.info("applied %s %s/%s", kind, owner[0], name)
        self._remember(owner, kind, name, digest, result)
        return digest

    def _send(self, manifest: Manifest) -> dict[str, Any]:
        """Apply ``manifest``; a Service's apply timed, whatever its outcome."""
        if manifest["kind"] != "Service":
            return self.kube.apply(manifest, FIELD_MANAGER)
        started = time.monotonic()
        try:
            return self.kube.apply(manifest, FIELD_MANAGER)
        finally:
            self.service_timed(started, time.monotonic() - started)

    def _remember(self, owner: Owner, kind: str, name: str, digest: str, live: dict[str, Any]) -> None:
        """Record a child as applied with ``digest``; of an unwatched one, also the version
        ``live`` (the apply's answer, or the child read) is at, for the resync to compare."""
        with self._lock:
            self._applied.setdefault(owner, {})[(kind, name)] = digest
            if kind not in WATCHED_CHILDREN:
                version = str((live.get("metadata") or {}).get("resourceVersion") or "")
                self._versions.setdefault(owner, {})[(kind, name)] = version

    def _fence(self, manifest: Manifest, live: dict[str, Any] | None) -> Manifest:
        """``manifest`` as sent: an update of a child the cache holds carries the version the
        pass saw, so the server refuses it (409) if anyone wrote the child since (a replica
        that leads now). A create cannot be conditional: a former leader whose lease ran
        out between its leadership check and the request may still create a child, which
        the leader's next pass applies over or deletes. Asks leadership first."""
        if not self.leading():
            raise NotLeadingError(
                f"stopped leading before applying {manifest['kind']} {manifest['metadata']['name']}"
            )
        version = (live or {}).get("metadata", {}).get("resourceVersion")
        if not version:
            return manifest
        return {**manifest, "metadata": {**manifest["metadata"], "resourceVersion": version}}

    def _hand_over(self, deployment: Manifest, replicas: int) -> None:
        """Set the replica count under the hand-over manager; the HPA takes it from there."""
        if not self.leading():
            raise NotLeadingError(f"stopped leading before handing over {deployment['metadata']['name']}")
        handed = self.kube.apply(build_replica_handover(deployment, replicas), HANDOVER_FIELD_MANAGER)
        # Write-through: the apply after it is conditional on the version the cache holds.
        self.cache.upsert("Deployment", handed)
        meta = deployment["metadata"]
        LOG.info("replicas of %s/%s handed over to the HPA at %d", meta["namespace"], meta["name"], replicas)

    def _claim(self, owner: Owner, manifest: Manifest) -> dict[str, Any] | None:
        """Refuse (ChildOwnedByAnotherError) a child whose name another owner's object holds.
        A child not claimed before is read: from the cache if it holds it, else from the API
        server (the watches see only children labelled as the operator's). What was read,
        if it was."""
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        with self._lock:
            if (kind, name) in self._claimed.get(owner, set()):
                return None
        live = self.cache.get(kind, owner[0], name) if kind in WATCHED_CHILDREN else None
        if live is None:
            live = self.kube.get(kind, owner[0], name)
        holder = foreign_holder(live, manifest)
        if holder is not None:
            raise ChildOwnedByAnotherError(kind, name, holder)
        with self._lock:
            self._claimed.setdefault(owner, set()).add((kind, name))
        return live

    def _adopt(self, owner: Owner, manifest: Manifest, digest: str, live: dict[str, Any]) -> bool:
        """Take an unwatched child just read as applied, without applying it, if our last
        apply was this very manifest (its hash label) and it still holds every field of it:
        a replica that restarts, or takes a shard over, then re-applies none of them."""
        if applied_hash(live) != digest or not holds_all(live, manifest):
            return False
        self._remember(owner, manifest["kind"], manifest["metadata"]["name"], digest, live)
        return True

    def _delete(self, owner: Owner, owner_uid: str, kind: str, name: str) -> None:
        """Delete a child the owner controls, by uid: never a namesake someone made since.
        Read fresh, also by resourceVersion; one more try if it changed since that read."""
        for _ in range(2):
            live, fresh = self._read_for_delete(kind, owner[0], name)
            if live is None:
                break
            if not ours_to_delete(live, owner_uid):
                LOG.warning("not deleting %s %s/%s: another owner's", kind, owner[0], name)
                break
            preconditions = {"uid": live["metadata"]["uid"]}
            if fresh and live["metadata"].get("resourceVersion"):
                preconditions["resourceVersion"] = live["metadata"]["resourceVersion"]
            if not self.leading():
                raise NotLeadingError(f"stopped leading before deleting {kind} {name}")
            if self.kube.delete(kind, owner[0], name, preconditions):
                LOG.info("deleted %s %s/%s", kind, owner[0], name)
                break
        with self._lock:
            self._applied.get(owner, {}).pop((kind, name), None)
            self._versions.get(owner, {}).pop((kind, name), None)
            self._claimed.get(owner, set()).discard((kind, name))

    def _read_for_delete(self, kind: str, namespace: str, name: str) -> tuple[dict[str, Any] | None, bool]:
        """A child as known before deleting it, and whether just read from the API server
        (the cache's copy of a watched child may lag its resourceVersion)."""
        if kind in WATCHED_CHILDREN:
            return self.cache.get(kind, namespace, name), False
        return self.kube.get(kind, namespace, name), True
