"""Leader election on a Lease, with an in-memory Lease that behaves like the API server's
(resourceVersion grows; an update with an old one is refused with 409) and a fake clock."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modeldeploy.kube.lease import LeaderElector, LeaseTimings
from modeldeploy.kube.transport import ApiError

TIMINGS = LeaseTimings(lease_duration=15, renew_deadline=10, retry_period=2)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class MemoryLease:
    namespace, name = "modeldeploy-system", "modeldeploy-operator"

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.rv = 0
        self.down = False

    def get(self) -> dict[str, Any] | None:
        if self.down:
            raise ApiError(status=503, reason="Service Unavailable")
        return copy.deepcopy(self.lease)

    def _stored(self, spec: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        self.lease = {"metadata": {"name": self.name, "resourceVersion": str(self.rv)}, "spec": dict(spec)}
        return copy.deepcopy(self.lease)

    def create(self, spec: dict[str, Any]) -> dict[str, Any]:
        if self.lease is not None:
            raise ApiError(status=409, reason="AlreadyExists")
        return self._stored(spec)

    def update(self, lease: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        assert self.lease is not None
        if lease["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
            raise ApiError(status=409, reason="Conflict")
        return self._stored(spec)


def elector(api: MemoryLease, identity: str, clock: Clock, started: list[str] | None = None) -> LeaderElector:
    def on_start() -> None:
        if started is not None:
            started.append(identity)

    return LeaderElector(api, identity, TIMINGS, on_started_leading=on_start, clock=clock)  # type: ignore[arg-type]


def test_one_replica_leads_the_other_waits_and_takes_over_only_after_the_lease_duration() -> None:
    api, clock, started = MemoryLease(), Clock(), list[str]()
    a, b = elector(api, "a", clock, started), elector(api, "b", clock, started)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    assert (a.is_leader(), b.is_leader()) == (True, False)
    for _ in range(10):  # a renews every retry period: b never takes over
        clock.now += 2
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
    # a dies. b counts the lease duration from when it last saw the lease change.
    clock.now += 14
    assert not b.try_acquire_or_renew()
    clock.now += 2
    assert b.try_acquire_or_renew()
    assert started == ["a", "b"]
    assert api.lease is not None
    assert api.lease["spec"]["holderIdentity"] == "b"
    assert api.lease["spec"]["leaseTransitions"] == 1


def test_a_leader_that_cannot_renew_stops_before_its_lease_can_expire_for_others() -> None:
    api, clock = MemoryLease(), Clock()
    a = elector(api, "a", clock)
    assert a.try_acquire_or_renew()
    api.down = True
    clock.now += TIMINGS.renew_deadline - 1
    assert a.is_leader()
    assert a.healthy()
    clock.now += 1  # the renew deadline, still short of the lease duration others wait for
    assert not a.is_leader()
    assert not a.healthy(), "/healthz must report a leader that cannot renew"
    with pytest.raises(ApiError):
        a.try_acquire_or_renew()
    a._check_deadline()
    assert not a.healthy()
    api.down = False
    assert a.try_acquire_or_renew()  # nobody took it meanwhile: it leads again
    assert a.healthy()


def test_two_replicas_racing_for_a_free_lease_elect_one() -> None:
    api, clock = MemoryLease(), Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    assert a.try_acquire_or_renew()
    a.release()
    lease = api.get()
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == ""
    # Both read the released lease; a writes first, b's update carries the old version.
    b_view = api.get()
    assert a.try_acquire_or_renew()
    assert b_view is not None
    with pytest.raises(ApiError) as refused:
        api.update(b_view, {**b_view["spec"], "holderIdentity": "b"})
    assert refused.value.status == 409
    assert not b.try_acquire_or_renew()
    assert a.is_leader()
    assert not b.is_leader()


def test_a_released_lease_is_taken_at_once() -> None:
    api, clock = MemoryLease(), Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    a.release()
    assert not a.is_leader()
    assert b.try_acquire_or_renew()  # no lease duration to wait out
