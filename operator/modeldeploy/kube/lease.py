"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics.

- Every ``retry_period`` a replica tries to acquire or renew the Lease. A Lease held by
  another replica counts as held until ``lease_duration`` has passed since this replica
  last saw it change (its own clock only: the holder's renewTime is never compared
  with local time, so clock skew between nodes cannot elect two leaders).
- Every write is an update carrying the Lease's resourceVersion: of two replicas trying
  at once, one gets 409 and stays a follower.
- A leader that has not renewed within ``renew_deadline`` stops leading at once, before
  its Lease can expire for the others (renew_deadline < lease_duration), so two leaders
  never overlap while clocks run at the same rate.
- On a clean shutdown the leader releases the Lease (holder cleared, duration 1 s), so
  a standby takes over in about one retry period instead of a whole lease duration.

Leading is what a caller asks before it acts (``is_leader``). A leader paused past its
lease may act before it notices, so writes that must not land from a former leader are
best fenced besides (conditional on the resourceVersion they were computed from).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .transport import ApiError

LOG = logging.getLogger(__name__)
# client-go's factor: the renew deadline must exceed the retry period by this much, so a
# retry delayed by jitter still comes before the deadline.
JITTER_FACTOR = 1.2
FIELD_NAMES = ("lease_duration", "renew_deadline", "retry_period")


@dataclass(frozen=True)
class LeaseTimings:
    # Shorter than client-go's defaults (15, 10, 2) in the same proportion: a crashed
    # leader is replaced sooner, and renewing every retry period still leaves a leader
    # three tries before its renew deadline.
    lease_duration: float = 10.0
    renew_deadline: float = 7.0
    retry_period: float = 2.0

    def problems(self, names: tuple[str, str, str] = FIELD_NAMES) -> list[str]:
        """What makes these timings unsafe, as client-go refuses them, each naming the
        setting by ``names`` (lease duration, renew deadline, retry period). A renew
        deadline not under the lease duration lets a paused leader act after a standby
        took its lease (two leaders); one too close to the retry period leaves a leader
        no second try before it must step down."""
        duration, deadline, period = names
        values = {duration: self.lease_duration, deadline: self.renew_deadline, period: self.retry_period}
        found = [f"{name}={value:g} must be above 0" for name, value in values.items() if not value > 0]
        if not self.lease_duration > self.renew_deadline:
            found.append(
                f"{duration}={self.lease_duration:g} must be above {deadline}={self.renew_deadline:g}: "
                "a paused leader could still act after a standby took over"
            )
        if not self.renew_deadline > JITTER_FACTOR * self.retry_period:
            found.append(
                f"{deadline}={self.renew_deadline:g} must be above {JITTER_FACTOR:g} x "
                f"{period}={self.retry_period:g}: a leader needs more than one try to renew"
            )
        return found


class LeaseApi:
    """The three Lease requests the elector makes, on the operator's API client."""

    def __init__(
        self, call: Callable[..., Any], namespace: str, name: str, timeout: float | None = None
    ) -> None:
        # Each request ends within ``timeout`` (the renew deadline): a renewal stuck on a
        # silent network must not outlast the time the leader has to renew.
        self._raw, self.namespace, self.name, self.timeout = call, namespace, name, timeout

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        return self._raw(method, path, body=body, timeout=self.timeout)

    @property
    def _collection(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"

    def get(self) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self._call("GET", f"{self._collection}/{self.name}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return result

    def create(self, spec: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": self.name}}
        result: dict[str, Any] = self._call("POST", self._collection, body={**body, "spec": spec})
        return result

    def update(self, lease: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        # A PUT with the resourceVersion read: the server refuses it (409) if anyone wrote since.
        body = {**lease, "spec": spec}
        result: dict[str, Any] = self._call("PUT", f"{self._collection}/{self.name}", body=body)
        return result


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class LeaderElector:
    api: LeaseApi
    identity: str
    timings: LeaseTimings = field(default_factory=LeaseTimings)
    on_started_leading: Callable[[], None] = lambda: None
    clock: Callable[[], float] = time.monotonic
    _leading_until: float = 0.0  # monotonic: leading while now < this
    _observed: tuple[str, str] | None = None  # (holder, resourceVersion) last seen
    _observed_at: float = 0.0
    _last_renew: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _leading: bool = False
    # Stepped down because renewals failed, and has not reached the lease since.
    _cut_off: bool = False
    # Terms led so far: one more each time it starts leading, or renews after its renew
    # deadline passed (is_leader() was False meanwhile, and what it skipped then is owed).
    terms: int = 0

    def is_leader(self) -> bool:
        with self._lock:
            return self._leading and self.clock() - self._last_renew < self.timings.renew_deadline

    def observe(self, lease: dict[str, Any]) -> None:
        """Note this Lease as read elsewhere (in a list of them all): its holder's expiry
        counts from when a change was first seen, so a replica that starts contending for
        it later need not wait a whole lease duration more."""
        holder = str((lease.get("spec") or {}).get("holderIdentity") or "")
        version = str(lease.get("metadata", {}).get("resourceVersion", ""))
        if self._observed != (holder, version):
            self._observed, self._observed_at = (holder, version), self.clock()

    def healthy(self) -> bool:
        """False when this replica leads but cannot renew (for /healthz): from the renew
        deadline on, until it reaches the Lease again."""
        with self._lock:
            overdue = self._leading and self.clock() - self._last_renew >= self.timings.renew_deadline
            return not (overdue or self._cut_off)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        LOG.info("leader election: lease %s/%s as %s", self.api.namespace, self.api.name, self.identity)
        while not self._stop.is_set():
            try:
                self.try_acquire_or_renew()
            except Exception as exc:  # the API server may be down: try again next period
                LOG.warning("leader election: could not reach the lease: %s", str(exc)[:200])
            self._check_deadline()
            self._stop.wait(self.timings.retry_period)

    def _check_deadline(self) -> None:
        with self._lock:
            lost = self._leading and self.clock() - self._last_renew >= self.timings.renew_deadline
            if lost:
                self._leading = False
                self._cut_off = True
        if lost:
            LOG.warning(
                "leader election: %s stopped leading: no renewal within %gs",
                self.identity,
                self.timings.renew_deadline,
            )

    def try_acquire_or_renew(self) -> bool:
        now = self.clock()
        lease = self.api.get()
        with self._lock:
            self._cut_off = False  # the lease answered
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.timings.lease_duration),
            "acquireTime": _micro_time(),
            "renewTime": _micro_time(),
            "leaseTransitions": 0,
        }
        if lease is None:
            try:
                self.api.create(spec)
            except ApiError as exc:
                if exc.status == 409:
                    return False  # another replica created it first
                raise
            self._became_leader(now)
            return True
        current = lease.get("spec") or {}
        holder = str(current.get("holderIdentity") or "")
        version = str(lease.get("metadata", {}).get("resourceVersion", ""))
        if self._observed != (holder, version):
            self._observed, self._observed_at = (holder, version), now
        duration = float(current.get("leaseDurationSeconds") or self.timings.lease_duration)
        held_by_other = holder not in ("", self.identity) and now - self._observed_at < duration
        if held_by_other:
            self._follow(holder)
            return False
        if holder == self.identity:
            spec["acquireTime"] = current.get("acquireTime") or spec["acquireTime"]
            spec["leaseTransitions"] = int(current.get("leaseTransitions") or 0)
        else:
            spec["leaseTransitions"] = int(current.get("leaseTransitions") or 0) + 1
        try:
            updated = self.api.update(lease, spec)
        except ApiError as exc:
            if exc.status == 409:
                return False  # someone else wrote first: read again next period
            raise
        self._observed = (self.identity, str(updated.get("metadata", {}).get("resourceVersion", "")))
        self._observed_at = now
        self._became_leader(now)
        return True

    def _became_leader(self, now: float) -> None:
        with self._lock:
            started = not self._leading
            lapsed = self.clock() - self._last_renew >= self.timings.renew_deadline
            if started or lapsed:
                self.terms += 1
            self._leading = True
            self._last_renew = now
        if started:
            LOG.info("leader election: %s is now the leader", self.identity)
            self.on_started_leading()

    def _follow(self, holder: str) -> None:
        with self._lock:
            stopped = self._leading
            self._leading = False
        if stopped:
            LOG.warning("leader election: %s stopped leading: %s holds the lease", self.identity, holder)

    def release(self) -> None:
        """Give the lease up on a clean shutdown, so a standby takes over at once."""
        self._stop.set()
        with self._lock:
            leading, self._leading = self._leading, False
        if not leading:
            return
        try:
            lease = self.api.get()
            if lease is not None and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                spec = {
                    **lease["spec"],
                    "holderIdentity": "",
                    "leaseDurationSeconds": 1,
                    "renewTime": _micro_time(),
                }
                self.api.update(lease, spec)
                LOG.info("leader election: %s released the lease", self.identity)
        except Exception as exc:
            LOG.warning("leader election: could not release the lease: %s", str(exc)[:200])
