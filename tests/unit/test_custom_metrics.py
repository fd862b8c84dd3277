"""Custom PromQL metrics: placeholders filled in safely, each metric's verdict, the check's
verdict with them, and the bounded read of a Prometheus answering badly."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from modeldeploy.api.custom_metric import CustomMetric
from modeldeploy.api.spec import Analysis
from modeldeploy.api.status import CheckResult, Counters, MetricResult, Verdict
from modeldeploy.cli.views import rollout_view, status_text
from modeldeploy.probes import custom_metrics as probe
from modeldeploy.probes.custom_metrics import Subjects
from modeldeploy.rollout.custom_metrics import (
    Judged,
    Reading,
    Subject,
    judge,
    judged_with,
    promql_duration,
    promql_string,
    render,
)
from modeldeploy.rollout.types import Check
from modeldeploy.rollout.window import MESSAGE_LIMIT
from tests.support.scripted_http import ScriptedServer

from .test_cli import NOW as CLI_NOW
from .test_cli import md as cli_md
from .test_cli import render as render_view
from .test_reconcile import canary_at_its_first_step, deployment, pod, reconciler

pytestmark = pytest.mark.timeout(60)
NOW = "2026-01-01T00:00:10Z"
QUERY = 'sum(rate(hits{namespace="{{namespace}}",name="{{name}}",version="{{version}}"}[{{window}}]))'
CANARY = Subject("ml", "mnist", 3, 120)
STABLE = Subject("ml", "mnist", 2, 120)


def metric(**fields: Any) -> CustomMetric:
    return CustomMetric.model_validate({"name": "accuracy", "query": QUERY, **fields})


def analysis(address: str, *metrics: dict[str, Any]) -> Analysis:
    return Analysis.model_validate({"prometheus": {"address": address}, "metrics": list(metrics)})


# --- placeholders ---------------------------------------------------------------------------


def test_placeholders_are_filled_in() -> None:
    assert render(QUERY, CANARY) == 'sum(rate(hits{namespace="ml",name="mnist",version="3"}[120s]))'


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ('a"b', 'a\\"b'),
        ("a\\b", "a\\\\b"),
        ("a\nb", "a\\nb"),
        ('x"}) or vector(1) #', 'x\\"}) or vector(1) #'),
        ("plain-name", "plain-name"),
    ],
)
def test_label_values_are_escaped_for_a_double_quoted_string(raw: str, escaped: str) -> None:
    assert promql_string(raw) == escaped
    # Inside the query, the value cannot end its string: one quote opens, one closes.
    rendered = render('m{n="{{name}}",version="{{version}}"}', Subject("ml", raw, 1, 60))
    assert rendered == f'm{{n="{escaped}",version="1"}}'


def test_a_value_is_never_read_again_for_placeholders() -> None:
    rendered = render('m{n="{{name}}",v="{{version}}"}', Subject("ml", "{{version}}", 7, 60))
    assert rendered == 'm{n="{{version}}",v="7"}'


@pytest.mark.parametrize(
    ("seconds", "duration"), [(120, "120s"), (1.5, "1500ms"), (90.0, "90s"), (0.0001, "1ms"), (0, "1ms")]
)
def test_the_window_is_a_promql_duration(seconds: float, duration: str) -> None:
    assert promql_duration(seconds) == duration


# --- the spec ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"query": 'm{v="{{version}}",x="{{model}}"}', "min": 1}, "query"),  # not a placeholder
        ({"query": 'm{v="{{ version }}"}', "min": 1}, "query"),
        ({"query": "sum(m)", "min": 1}, "{{version}}"),
        ({}, "a metric needs a bound"),
        ({"min": 2, "max": 1}, "min must not exceed max"),
        ({"maxDropVsStable": -0.1}, "maxDropVsStable"),
        ({"name": "Accuracy!", "min": 1}, "name"),
        ({"min": math.inf}, "less than or equal to"),
    ],
)
def test_a_metric_spec_that_cannot_be_judged_is_refused(fields: dict[str, Any], why: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(why)):
        metric(**fields)


def test_braces_of_promql_itself_are_accepted() -> None:
    accepted = metric(query='sum by (le) (m{version="{{version}}"}) > bool {', min=0)
    assert accepted.query.endswith("{")


def test_metrics_need_prometheus_and_unique_names() -> None:
    one = {"name": "a", "query": QUERY, "min": 0}
    with pytest.raises(ValidationError, match=r"need analysis\.prometheus"):
        Analysis.model_validate({"metrics": [one]})
    with pytest.raises(ValidationError, match="unique"):
        analysis("http://p:9090", one, one)
    with pytest.raises(ValidationError, match="at most 8"):
        analysis("http://p:9090", *({**one, "name": f"m{i}"} for i in range(9)))
    assert analysis("http://p:9090", one).metrics[0].min == 0


# --- one metric's verdict ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reading", "said"),
    [
        (Reading(None), "no data"),
        (Reading(math.nan), "answered nan"),
        (Reading(math.inf), "answered inf"),
        (Reading(-math.inf), "answered -inf"),
        (Reading(None, "no answer from Prometheus: timed out"), "timed out"),
    ],
)
def test_no_data_nan_or_no_answer_is_inconclusive_never_a_pass(reading: Reading, said: str) -> None:
    judged = judge(metric(min=0.9), reading, None)
    assert judged.result.result is Verdict.INCONCLUSIVE
    assert judged.result.value is None
    assert said in judged.text


def test_absolute_bounds() -> None:
    assert judge(metric(min=0.9), Reading(0.95), None).result.result is Verdict.PASSED
    low = judge(metric(min=0.9, max=0.99), Reading(0.85), None)
    assert low.result.result is Verdict.FAILED
    assert low.text == "metric accuracy 0.85 < min 0.9"
    high = judge(metric(max=0.99), Reading(1.5), None)
    assert (high.result.result, high.text) == (Verdict.FAILED, "metric accuracy 1.5 > max 0.99")
    assert judge(metric(min=0.9), Reading(0.9), None).result.result is Verdict.PASSED  # bounds are inclusive


def test_the_drop_below_the_stable() -> None:
    bound = metric(maxDropVsStable=0.02)
    passed = judge(bound, Reading(0.94), Reading(0.95))
    assert passed.result == MetricResult(
        name="accuracy", value=0.94, stable_value=0.95, result=Verdict.PASSED
    )
    assert passed.text == "metric accuracy 0.94 vs stable 0.95"
    failed = judge(bound, Reading(0.90), Reading(0.95))
    assert failed.result.result is Verdict.FAILED
    assert "0.9 is 0.05 below the stable's 0.95 > maxDropVsStable 0.02" in failed.text
    better = judge(bound, Reading(0.99), Reading(0.95))  # above the stable is never a drop
    assert better.result.result is Verdict.PASSED


def test_without_a_stable_value_the_drop_is_inconclusive() -> None:
    bound = metric(maxDropVsStable=0.02)
    nothing = judge(bound, Reading(0.94), None)
    assert nothing.result.result is Verdict.INCONCLUSIVE
    assert "no stable version" in nothing.text
    nan = judge(bound, Reading(0.94), Reading(math.nan))
    assert nan.result.result is Verdict.INCONCLUSIVE
    assert nan.result.stable_value is None
    # An absolute bound broken is a failure whatever the stable says.
    assert judge(metric(min=0.95, maxDropVsStable=0.02), Reading(0.9), None).result.result is Verdict.FAILED


# --- the check with its metrics ------------------------------------------------------------


def built_in(verdict: Verdict, message: str) -> CheckResult:
    return CheckResult(at=NOW, verdict=verdict, message=message, requests=100, success_rate=1.0)


def test_a_failed_metric_fails_a_passing_check_and_leads_its_message() -> None:
    judged = [
        judge(metric(name="ok", min=0), Reading(1.0), None),
        judge(metric(name="quality", min=0.9), Reading(0.5), None),
    ]
    result = judged_with(built_in(Verdict.PASSED, "success rate 1.0000, p99 3.0ms over 100 requests"), judged)
    assert result.verdict is Verdict.FAILED
    assert result.message.startswith("metric quality 0.5 < min 0.9; success rate 1.0000")
    assert [m.name for m in result.metrics or []] == ["ok", "quality"]
    assert result.requests == 100  # the built-in figures stay


def test_any_inconclusive_metric_keeps_the_check_from_passing() -> None:
    judged = [judge(metric(min=0), Reading(None), None)]
    result = judged_with(built_in(Verdict.PASSED, "fine"), judged)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.message == "metric accuracy no data; fine"


def test_a_failed_built_in_check_stays_failed_and_first() -> None:
    judged = [judge(metric(min=0), Reading(1.0), None)]
    result = judged_with(built_in(Verdict.FAILED, "success rate 0.5000 < 0.9"), judged)
    assert result.verdict is Verdict.FAILED
    assert result.message.startswith("success rate 0.5000 < 0.9")


def test_passing_metrics_pass_and_the_message_stays_bounded() -> None:
    judged = [judge(metric(name=f"metric-{i}-" + "x" * 50, min=0), Reading(1.0), None) for i in range(8)]
    result = judged_with(built_in(Verdict.PASSED, "fine"), judged)
    assert result.verdict is Verdict.PASSED
    assert len(result.message) == MESSAGE_LIMIT
    assert judged_with(built_in(Verdict.PASSED, "fine"), []) == built_in(Verdict.PASSED, "fine")
    # What status carries stays valid JSON, values included.
    json.dumps(result.model_dump(mode="json", by_alias=True, exclude_none=True), allow_nan=False)


# --- reading Prometheus --------------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus_double() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    yield server
    server.stop()  # polls for half a second: once for the module, not once a test


@pytest.fixture
def replies(prometheus_double: ScriptedServer) -> ScriptedServer:
    """The module's scripted Prometheus, its script reset for each test."""
    prometheus_double.queries, prometheus_double.bodies = {}, {}
    prometheus_double.default, prometheus_double.status, prometheus_double.drip_seconds = b"", 200, 0.0
    return prometheus_double


def vector(*values: str) -> bytes:
    result = [{"metric": {"i": str(i)}, "value": [1, v]} for i, v in enumerate(values)]
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()


def run(spec: Analysis, stable: Subject | None = STABLE) -> CheckResult:
    check = Check(built_in(Verdict.PASSED, "fine"))
    return probe.with_custom_metrics(spec, Subjects(CANARY, stable), check).result


def test_the_canary_and_the_stable_are_asked_by_version(replies: ScriptedServer) -> None:
    replies.queries = {'version="3"}[120s]': vector("0.90"), 'version="2"}[120s]': vector("0.95")}
    spec = analysis(replies.address, {"name": "accuracy", "query": QUERY, "maxDropVsStable": 0.01})
    result = run(spec)
    assert result.verdict is Verdict.FAILED
    assert result.metrics == [
        MetricResult(name="accuracy", value=0.9, stable_value=0.95, result=Verdict.FAILED)
    ]
    assert "below the stable's 0.95" in result.message


def test_a_scalar_answer_is_judged(replies: ScriptedServer) -> None:
    replies.default = json.dumps(
        {"status": "success", "data": {"resultType": "scalar", "result": [1, "7"]}}
    ).encode()
    result = run(analysis(replies.address, {"name": "n", "query": QUERY, "max": 10}))
    assert result.verdict is Verdict.PASSED
    assert result.metrics is not None
    assert result.metrics[0].value == 7


@pytest.mark.parametrize(
    ("name", "body", "said"),
    [
        ("no series", vector(), "no data"),
        ("NaN", vector("NaN"), "answered nan"),
        ("+Inf", vector("+Inf"), "answered inf"),
        ("two series", vector("1", "2"), "2 series, not one"),
        (
            "a matrix",
            json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}).encode(),
            "matrix",
        ),
        ("an error", json.dumps({"status": "error", "error": "secret"}).encode(), "without success"),
        ("not JSON", b"<html>proxy error</html>", "not answer JSON"),
        ("not a number", vector("x"), "not a number"),
        ("huge", vector("1") + b" " * (2 << 20), "no answer from Prometheus"),  # too big or too slow
    ],
)
def test_answers_that_cannot_be_judged_are_inconclusive(
    replies: ScriptedServer, name: str, body: bytes, said: str
) -> None:
    replies.default = body
    result = run(analysis(replies.address, {"name": "n", "query": QUERY, "min": 0}))
    assert result.verdict is Verdict.INCONCLUSIVE, name
    assert said in result.message, (name, result.message)
    assert "secret" not in result.message


def test_a_refused_query_never_copies_the_answer(replies: ScriptedServer) -> None:
    replies.status = 400
    replies.default = b'{"status":"error","error":"internal-token-7f3a"}'
    result = run(analysis(replies.address, {"name": "n", "query": QUERY, "min": 0}))
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "HTTP 400" in result.message
    assert "internal-token" not in result.message


def test_slow_answers_are_cut_and_asked_at_once(replies: ScriptedServer) -> None:
    replies.default = vector("1")
    replies.drip_seconds = 1.0  # each answer would take well over the timeout
    metrics = [{"name": f"m{i}", "query": QUERY, "min": 0} for i in range(8)]
    started = time.monotonic()
    result = run(analysis(replies.address, *metrics))
    elapsed = time.monotonic() - started
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "no answer from Prometheus" in result.message
    # 8 queries of a 2 s bound each, asked at once: about one bound, not eight.
    assert elapsed < 2 * probe.SCRAPE_TIMEOUT_SECONDS, elapsed


def test_a_bug_never_passes_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any) -> list[Judged]:
        raise RuntimeError("boom")

    monkeypatch.setattr(probe, "read_and_judge", broken)
    result = run(analysis("http://127.0.0.1:9", {"name": "n", "query": QUERY, "min": 0}))
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "custom metrics failed: RuntimeError: boom" in result.message


# --- the plugin ----------------------------------------------------------------------------


def test_the_plugin_shows_each_metric_with_the_stable_and_its_verdict() -> None:
    last = {
        "verdict": "Failed",
        "at": "t",
        "message": "metric ok-ratio 0.5 < min 0.9",
        "metrics": [
            {"name": "ok-ratio", "value": 0.5, "stableValue": 1.0, "result": "Failed"},
            {"name": "no-data", "result": "Inconclusive"},
        ],
    }
    canary = {
        "version": 3,
        "step": 0,
        "weight": 10,
        "replicas": 1,
        "analysis": {"failed": 1, "lastCheck": last},
    }
    body = cli_md(phase="Progressing", stable={"version": 2}, canary=canary)
    shown = "ok-ratio 0.5 vs stable 1 Failed, no-data no data Inconclusive"
    assert f"metrics: {shown}" in status_text(body)
    assert shown in " ".join(render_view(rollout_view(body, [], CLI_NOW)).split())


# --- a reconcile pass ----------------------------------------------------------------------


def test_a_due_check_asks_the_canary_and_the_stable_and_a_failing_metric_counts(
    replies: ScriptedServer,
) -> None:
    # The resource serves version 2; version 3's canary is due a check (see test_reconcile).
    replies.queries = {'version="3"}[120s]': vector("0.80"), 'version="2"}[120s]': vector("0.97")}
    query = 'avg(quality{namespace="{{namespace}}",name="{{name}}",version="{{version}}"}[{{window}}])'
    metric_spec = {"name": "quality", "query": query, "maxDropVsStable": 0.05}
    cache = canary_at_its_first_step(
        {
            "interval": "5s",
            "minRequests": 1,
            "window": "2m",
            "prometheus": {"address": replies.address},
            "metrics": [metric_spec],
        }
    )
    cache.upsert("Pod", pod("mnist-v2-a", 2, "127.1.0.7", gated=True))
    cache.upsert("Deployment", deployment(2, replicas=1, serving=1))
    cache.upsert("Deployment", deployment(3, replicas=1, serving=1))
    built_in_passed = Check(built_in(Verdict.PASSED, "success rate 1.0000"), Counters(requests=1))
    rec, kube, _, _ = reconciler(cache, checks=[built_in_passed])
    rec.prometheus_allowed = (replies.address,)
    rec.reconcile("ml", "mnist")
    analysis = kube.statuses[-1]["canary"]["analysis"]
    assert analysis["failed"] == 1
    assert analysis["lastCheck"]["verdict"] == "Failed"
    assert analysis["lastCheck"]["metrics"] == [
        {"name": "quality", "value": 0.8, "stableValue": 0.97, "result": "Failed"}
    ]
    assert analysis["lastCheck"]["message"].startswith("metric quality 0.8 is 0.17 below the stable's 0.97")
    healthy = next(c for c in kube.statuses[-1]["conditions"] if c["type"] == "CanaryHealthy")
    assert (healthy["reason"], healthy["message"]) == ("AnalysisFailed", analysis["lastCheck"]["message"])
