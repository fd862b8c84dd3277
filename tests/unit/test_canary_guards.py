"""The edges of the canary's rollback, deadline and analysis clock: each test holds a
guard that mutation testing (make mutation) found no test holding."""

from __future__ import annotations

import pytest

from modeldeploy.api.status import CanaryStatus, PodCounters, PreTrafficStatus
from modeldeploy.api.times import parse_time
from modeldeploy.rollout.canary import analysis_due, opening_canary
from modeldeploy.rollout.types import PlanInputs, PreTrafficVerdict

from .objects import make_plan
from .test_canary import STABLE_2, after, at, canary_md, failed, observed

pytestmark = pytest.mark.timeout(30)


def test_the_deadline_itself_is_not_yet_past() -> None:
    md = canary_md()
    status = after(make_plan(md, STABLE_2, observed(0), at(0)))  # pods never serve
    assert make_plan(md, status, observed(0), at(60)).outcome is None
    assert make_plan(md, status, observed(0), at(61)).outcome is not None


def test_failed_versions_keep_the_highest_fifty() -> None:
    md = canary_md(analysis={"interval": "5s", "failureLimit": 1, "minRequests": 10})
    status = after(make_plan(md, STABLE_2, observed(1), at(0)))
    status = status.model_copy(update={"failed_versions": list(range(4, 64))})
    plan = make_plan(md, status, observed(1), at(5), PlanInputs(check=failed(at(5))))
    assert plan.outcome is not None
    assert plan.failed_versions == list(range(14, 64))


@pytest.mark.parametrize(
    ("changes", "rollout", "due"),
    [
        ({}, {}, True),
        ({"version": 4}, {}, False),  # a canary of another version than the spec's
        ({"version": 2}, {}, False),
        ({"paused": True}, {}, False),
        ({}, {"paused": True}, False),
        ({"step_started_at": None}, {}, False),  # its pods do not all serve yet
    ],
)
def test_a_check_falls_due_only_for_the_running_canary_of_the_spec(
    changes: dict[str, object], rollout: dict[str, object], due: bool
) -> None:
    canary = CanaryStatus(version=3, step_started_at=at(10)).model_copy(update=changes)
    status = STABLE_2.model_copy(update={"canary": canary})
    assert analysis_due(canary_md(**rollout), status, parse_time(at(100))) is due


def test_no_canary_has_no_check_due() -> None:
    assert analysis_due(canary_md(), STABLE_2, parse_time(at(100))) is False


@pytest.mark.parametrize("written", [1, 4])
def test_a_canary_of_another_version_in_status_is_replaced(written: int) -> None:
    md = canary_md()  # version 3
    status = STABLE_2.model_copy(update={"canary": CanaryStatus(version=written, step=1)})
    canary = opening_canary(md, status, parse_time(at(0)), None)
    assert (canary.version, canary.step) == (3, 0)


CHECKED = PreTrafficStatus(warmed_up=True)
BASELINE = {"mnist-v3-a": PodCounters(requests=7, errors=1)}


@pytest.mark.parametrize("version", [2, 4])
def test_pre_traffic_results_of_another_version_are_not_the_canarys(version: int) -> None:
    verdict = PreTrafficVerdict(version=version, status=CHECKED, baselines=BASELINE)
    canary = opening_canary(canary_md(), STABLE_2, parse_time(at(0)), verdict)
    assert canary.pre_traffic is None
    assert canary.analysis.counters is None


def test_the_canarys_pre_traffic_results_and_baselines_are_kept() -> None:
    verdict = PreTrafficVerdict(version=3, status=CHECKED, baselines=BASELINE)
    canary = opening_canary(canary_md(), STABLE_2, parse_time(at(0)), verdict)
    assert canary.pre_traffic == CHECKED
    assert canary.analysis.counters is not None
    assert canary.analysis.counters.requests == 7
    bare = opening_canary(canary_md(), STABLE_2, parse_time(at(0)), PreTrafficVerdict(version=3))
    assert (bare.pre_traffic, bare.analysis.counters) == (None, None)
