"""The fetch's limits at their exact bounds: what is allowed at a limit and refused one past
it, so a bound moved by one (as the mutation run in make mutation moves it) fails here."""

from __future__ import annotations

import dataclasses

import pytest

from modeldeploy.api.quantity import to_bytes
from modeldeploy.api.spec import RuntimeSpec
from modeldeploy.fetcher.errors import FetchError
from modeldeploy.fetcher.limits import RATIO_FLOOR_BYTES, Budget, Deadline, Limits

pytestmark = pytest.mark.timeout(30)


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_default_byte_limit_is_the_default_model_volume() -> None:
    assert Limits().max_bytes == to_bytes(RuntimeSpec().model_volume_size_limit)


def test_bytes_up_to_the_limit_are_allowed_and_one_more_is_refused() -> None:
    budget = Budget(Limits(max_bytes=10))
    budget.wrote(4)
    budget.wrote(6)
    with pytest.raises(FetchError, match="larger than 10 bytes"):
        budget.wrote(1)


def test_entries_up_to_the_limit_are_allowed_and_one_more_is_refused() -> None:
    budget = Budget(Limits(max_entries=2))
    budget.entry("a")
    budget.entry("b")
    with pytest.raises(FetchError, match=r"more than 2 entries \(at 'c'\)"):
        budget.entry("c")


def test_the_ratio_is_checked_only_past_the_floor_and_past_the_ratio() -> None:
    at_floor = Budget(Limits(max_ratio=2), compressed_bytes=1)
    at_floor.wrote(RATIO_FLOOR_BYTES)  # far past the ratio, but small: allowed
    with pytest.raises(FetchError, match="expands more than 2 times"):
        at_floor.wrote(1)
    at_ratio = Budget(Limits(max_ratio=2), compressed_bytes=RATIO_FLOOR_BYTES)
    at_ratio.wrote(2 * RATIO_FLOOR_BYTES)
    with pytest.raises(FetchError, match="expands more than 2 times"):
        at_ratio.wrote(1)
    Budget(Limits(max_ratio=2)).wrote(10 * RATIO_FLOOR_BYTES)  # not an archive: no ratio
    assert RATIO_FLOOR_BYTES == 1 << 20


def test_the_deadline_holds_until_its_second_and_bounds_every_wait() -> None:
    clock = Clock()
    deadline = Deadline(10, clock)
    assert deadline.timeout(60) == 10
    assert deadline.timeout(3) == 3
    clock.now += 9.5
    assert deadline.remaining() == 0.5
    deadline.check()
    budget = Budget(Limits(), deadline=deadline)
    budget.entry("a")
    budget.wrote(1)
    clock.now += 0.5
    with pytest.raises(FetchError, match=r"longer than its deadline of 10 s"):
        deadline.check()
    with pytest.raises(FetchError, match="deadline"):
        deadline.timeout(60)
    with pytest.raises(FetchError, match="deadline"):
        budget.entry("b")
    with pytest.raises(FetchError, match="deadline"):
        budget.wrote(1)


def test_limits_read_from_the_environment() -> None:
    env = {
        "MODELDEPLOY_FETCH_MAX_BYTES": "5",
        "MODELDEPLOY_FETCH_MAX_ENTRIES": "6",
        "MODELDEPLOY_FETCH_MAX_RATIO": "7.5",
        "MODELDEPLOY_FETCH_DEADLINE_SECONDS": "8",
    }
    assert Limits.from_env(env) == Limits(max_bytes=5, max_entries=6, max_ratio=7.5, deadline_seconds=8)
    assert Limits.from_env({}) == Limits()


def test_the_default_entry_limit_is_a_hundred_thousand() -> None:
    budget = Budget(Limits())
    for i in range(100_000):
        budget.entry(str(i))
    with pytest.raises(FetchError, match="more than 100000 entries"):
        budget.entry("one more")


def test_a_tiny_archive_is_held_to_the_ratio_of_one_byte() -> None:
    """An empty or one-byte archive still bounds what it may expand to."""
    budget = Budget(Limits(max_ratio=2 * RATIO_FLOOR_BYTES), compressed_bytes=1)
    budget.wrote(2 * RATIO_FLOOR_BYTES)
    with pytest.raises(FetchError, match="expands more than"):
        budget.wrote(1)


def test_limits_cannot_be_changed_once_read() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Limits().max_bytes = 1  # type: ignore[misc]
