"""Webhook gates, the decisions: which gates a canary asks at each point, what a yes, a
refusal and a URL the admin did not allow do, and what status keeps. Pure, no network."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from modeldeploy.api.conditions import Reason
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import ActionValues, ModelDeploymentStatus, RolloutResult
from modeldeploy.api.webhook_gates import GatePoint, GateResult
from modeldeploy.rollout.report import canary_status
from modeldeploy.rollout.types import Plan, PlanInputs
from modeldeploy.rollout.webhooks import WebhookAnswer, sanitised, traffic_allowed

from .objects import SAMPLE_SPEC, make_plan, model_deployment
from .test_canary import STABLE_2, after, at, observed, passed

pytestmark = pytest.mark.timeout(30)

URL = "http://127.0.0.1:9000/hooks/"


def gate(name: str, at_: str, on_failure: str = "Rollback") -> dict[str, Any]:
    return {"name": name, "url": URL + name, "at": at_, "timeoutSeconds": 5, "onFailure": on_failure}


def gated_md(*gates: dict[str, Any]) -> Any:
    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["rollout"] = {
        "strategy": "Canary",
        "steps": [{"weight": 20, "pause": "10s"}, {"weight": 50, "pause": "10s"}],
        "analysis": {
            "interval": "5s",
            "minRequests": 10,
            "successRate": {"min": 0.95},
            "webhooks": list(gates),
        },
        "progressDeadlineSeconds": 60,
    }
    return model_deployment(spec)


def answer(
    name: str, point: GatePoint, step: int, when: str, allowed: bool = True, detail: str = ""
) -> PlanInputs:
    return PlanInputs(webhook_answers=(WebhookAnswer(3, name, point, step, allowed, detail, when),))


def status_of(plan: Plan) -> ModelDeploymentStatus:
    return after(plan)


def test_pre_traffic_gates_are_asked_at_the_start_and_keep_the_canary_out_of_service() -> None:
    md = gated_md(gate("sign-off", "PreTraffic"))
    started = make_plan(md, STABLE_2, observed(0), at(0))
    assert [(c.name, c.at, c.step, c.url) for c in started.webhook_calls] == [
        ("sign-off", GatePoint.PRE_TRAFFIC, 0, URL + "sign-off")
    ]
    body = started.webhook_calls[0].body
    assert (body["name"], body["stableVersion"], body["canaryVersion"], body["at"]) == (
        "mnist",
        2,
        3,
        "PreTraffic",
    )
    assert (body["step"], body["weight"], body["steps"]) == (0, 20, 2)
    assert started.canary is not None
    assert started.canary.webhook_wait is not None
    assert started.canary.webhook_wait[0] == Reason.WAITING_FOR_WEBHOOK
    status = status_of(started)
    assert not traffic_allowed(md, status, 3)  # the canary's pods stay gated shut
    assert traffic_allowed(md, status, 2)  # the stable's never wait for a gate

    yes = make_plan(md, status, observed(0), at(2), answer("sign-off", GatePoint.PRE_TRAFFIC, 0, at(2)))
    assert yes.webhook_calls == ()
    assert yes.canary is not None
    assert yes.canary.webhook_wait is None
    [record] = yes.canary.analysis.webhooks
    assert (record.name, record.result, record.checked_at) == ("sign-off", GateResult.PASSED, at(2))
    assert traffic_allowed(md, status_of(yes), 3)


def test_a_canary_without_pre_traffic_gates_and_a_first_rollout_never_wait() -> None:
    md = gated_md(gate("load", "Step"))
    assert traffic_allowed(md, ModelDeploymentStatus(), 3)  # no stable: no canary, no gate
    plan = make_plan(md, STABLE_2, observed(1), at(0))
    assert plan.webhook_calls == ()
    assert plan.canary is not None
    assert plan.canary.step_started_at is not None


def test_step_gates_hold_a_done_step_until_they_answer_2xx() -> None:
    md = gated_md(gate("load", "Step"))
    first = make_plan(md, STABLE_2, observed(1), at(0))
    done = make_plan(md, status_of(first), observed(1), at(12), PlanInputs(check=passed(at(12))))
    assert done.canary is not None
    assert done.canary.step == 0  # done, yet held before the 50% step's weight moves
    assert [(c.name, c.at, c.step, c.body["weight"]) for c in done.webhook_calls] == [
        ("load", GatePoint.STEP, 1, 50)
    ]
    asking = make_plan(md, status_of(done), observed(1), at(13))
    assert asking.canary is not None
    assert asking.canary.step == 0
    moved = make_plan(md, status_of(asking), observed(1), at(14), answer("load", GatePoint.STEP, 1, at(14)))
    assert moved.canary is not None
    assert moved.canary.step == 1
    assert moved.canary.webhook_wait is None


def test_pre_promotion_gates_are_asked_after_the_last_step_only() -> None:
    md = gated_md(gate("approve", "PrePromotion"))
    md = md.model_copy(
        update={
            "spec": md.spec.model_copy(
                update={"rollout": md.spec.rollout.model_copy(update={"steps": md.spec.rollout.steps[:1]})}
            )
        }
    )
    first = make_plan(md, STABLE_2, observed(1), at(0))
    assert first.webhook_calls == ()
    done = make_plan(md, status_of(first), observed(1), at(12), PlanInputs(check=passed(at(12))))
    assert [(c.at, c.step, c.body["weight"]) for c in done.webhook_calls] == [
        (GatePoint.PRE_PROMOTION, 1, 100)
    ]
    assert done.outcome is None
    promoting = make_plan(
        md, status_of(done), observed(1), at(13), answer("approve", GatePoint.PRE_PROMOTION, 1, at(13))
    )
    assert promoting.canary is not None
    assert promoting.canary.step == 1


def test_a_refusal_with_on_failure_rollback_rolls_back_with_the_answers_first_line() -> None:
    md = gated_md(gate("load", "PreTraffic"))
    started = make_plan(md, STABLE_2, observed(0), at(0))
    refused = make_plan(
        md,
        status_of(started),
        observed(0),
        at(3),
        answer("load", GatePoint.PRE_TRAFFIC, 0, at(3), allowed=False, detail="HTTP 500: p99 900ms > 250ms"),
    )
    assert refused.outcome is not None
    assert refused.outcome.result is RolloutResult.ROLLED_BACK
    assert refused.outcome.reason == (
        "WebhookRefused: webhook load refused version 3 before any traffic: HTTP 500: p99 900ms > 250ms"
    )
    assert refused.failed_versions == [3]


def test_a_refusal_with_on_failure_hold_holds_and_asks_again_each_interval() -> None:
    md = gated_md(gate("load", "Step", on_failure="Hold"))
    first = make_plan(md, STABLE_2, observed(1), at(0))
    done = make_plan(md, status_of(first), observed(1), at(12), PlanInputs(check=passed(at(12))))
    no = answer("load", GatePoint.STEP, 1, at(13), allowed=False, detail="HTTP 503: change freeze")
    held = make_plan(md, status_of(done), observed(1), at(13), no)
    assert held.outcome is None
    assert held.canary is not None
    assert held.canary.step == 0
    assert held.webhook_calls == ()  # not asked again at once
    assert held.requeue_after == pytest.approx(5.0)
    assert held.canary.webhook_wait is not None
    reason, message = held.canary.webhook_wait
    assert reason == Reason.WEBHOOK_REFUSED
    assert "load: HTTP 503: change freeze" in message
    [record] = held.canary.analysis.webhooks
    assert (record.result, record.message) == (GateResult.FAILED, "HTTP 503: change freeze")

    early = make_plan(md, status_of(held), observed(1), at(16))
    assert early.webhook_calls == ()
    assert early.requeue_after == pytest.approx(2.0)
    again = make_plan(md, status_of(early), observed(1), at(18))
    assert [c.name for c in again.webhook_calls] == ["load"]
    # Held past the progress deadline (60 s): waiting for a Hold gate's yes is not a stall.
    late = make_plan(md, status_of(again), observed(1), at(100))
    assert late.outcome is None
    assert late.canary is not None
    assert late.canary.webhook_wait is not None
    yes = make_plan(md, status_of(late), observed(1), at(101), answer("load", GatePoint.STEP, 1, at(101)))
    assert yes.canary is not None
    assert yes.canary.step == 1


def test_a_url_the_admin_did_not_allow_names_its_own_reason() -> None:
    md = gated_md(gate("load", "PreTraffic"))
    started = make_plan(md, STABLE_2, observed(0), at(0))
    detail = f"WebhookNotAllowed: {URL}load is not among the webhook URLs the operator may call"
    refused = make_plan(
        md,
        status_of(started),
        observed(0),
        at(1),
        answer("load", GatePoint.PRE_TRAFFIC, 0, at(1), False, detail),
    )
    assert refused.outcome is not None
    assert refused.outcome.reason.startswith("WebhookNotAllowed: webhook load refused version 3")


def test_answers_for_another_point_step_or_version_are_ignored() -> None:
    md = gated_md(gate("load", "PreTraffic"))
    started = make_plan(md, STABLE_2, observed(0), at(0))
    stale = PlanInputs(
        webhook_answers=(
            WebhookAnswer(2, "load", GatePoint.PRE_TRAFFIC, 0, True, "", at(1)),
            WebhookAnswer(3, "load", GatePoint.STEP, 1, True, "", at(1)),
            WebhookAnswer(3, "other", GatePoint.PRE_TRAFFIC, 0, True, "", at(1)),
        )
    )
    plan = make_plan(md, status_of(started), observed(0), at(1), stale)
    assert plan.canary is not None
    assert plan.canary.analysis.webhooks == []
    assert not traffic_allowed(md, status_of(plan), 3)


def test_every_gate_at_a_point_must_pass() -> None:
    md = gated_md(gate("a", "PreTraffic"), gate("b", "PreTraffic"))
    started = make_plan(md, STABLE_2, observed(0), at(0))
    assert sorted(c.name for c in started.webhook_calls) == ["a", "b"]
    one = make_plan(md, status_of(started), observed(0), at(1), answer("a", GatePoint.PRE_TRAFFIC, 0, at(1)))
    assert [c.name for c in one.webhook_calls] == ["b"]
    assert not traffic_allowed(md, status_of(one), 3)
    both = make_plan(md, status_of(one), observed(0), at(2), answer("b", GatePoint.PRE_TRAFFIC, 0, at(2)))
    assert traffic_allowed(md, status_of(both), 3)


def test_an_abort_ends_a_canary_waiting_at_a_gate_without_asking_it() -> None:
    md = gated_md(gate("load", "PreTraffic", on_failure="Hold"))
    started = make_plan(md, STABLE_2, observed(0), at(0))
    aborted = make_plan(
        md, status_of(started), observed(0), at(1), PlanInputs(actions=ActionValues(abort="now"))
    )
    assert aborted.outcome is not None
    assert aborted.outcome.result is RolloutResult.ABORTED
    assert aborted.webhook_calls == ()


def test_gate_records_survive_the_status_round_trip() -> None:
    md = gated_md(gate("load", "PreTraffic"))
    started = make_plan(md, STABLE_2, observed(0), at(0))
    yes = make_plan(
        md, status_of(started), observed(0), at(2), answer("load", GatePoint.PRE_TRAFFIC, 0, at(2))
    )
    assert yes.canary is not None
    written = canary_status(yes.canary).model_dump(mode="json", by_alias=True, exclude_none=True)
    assert written["analysis"]["webhooks"] == [
        {"name": "load", "at": "PreTraffic", "step": 0, "result": "Passed", "checkedAt": at(2), "message": ""}
    ]


def test_an_answer_is_one_printable_line_cut_short() -> None:
    assert sanitised("HTTP 500: \x1b[31mred\x1b[0m\tdone") == "HTTP 500:  [31mred [0m done"
    assert len(sanitised("x" * 1000)) == 200


@pytest.mark.parametrize(
    ("webhooks", "message"),
    [
        ([gate("a", "Step"), gate("a", "PrePromotion")], "webhooks names must be unique"),
        ([{**gate("a", "Step"), "url": "ftp://127.0.0.1/x"}], "String should match pattern"),
        ([{**gate("a", "Step"), "url": "http://user@127.0.0.1/x"}], "String should match pattern"),
        ([{**gate("a", "Step"), "url": "http://127.0.0.1/" + "x" * 600}], "at most 512 characters"),
        ([{**gate("a", "Step"), "at": "Later"}], "PreTraffic"),
        ([{**gate("a", "Step"), "timeoutSeconds": 0}], "greater than or equal to 1"),
        (
            [{**gate("a", "Step"), "timeoutSeconds": 60}],
            "timeoutSeconds must be shorter than progressDeadline",
        ),
    ],
)
def test_bad_webhooks_are_refused_naming_the_field(webhooks: list[dict[str, Any]], message: str) -> None:
    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["rollout"] = {
        "strategy": "Canary",
        "progressDeadlineSeconds": 60,
        "analysis": {"webhooks": webhooks},
    }
    with pytest.raises(ValidationError, match=message):
        ModelDeploymentSpec.model_validate(spec)


def test_gates_under_strategy_immediate_are_refused() -> None:
    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["rollout"] = {"strategy": "Immediate", "analysis": {"webhooks": [gate("a", "PrePromotion")]}}
    with pytest.raises(ValidationError, match=r"analysis\.webhooks gate canaries: strategy Immediate"):
        ModelDeploymentSpec.model_validate(spec)
