"""Analysis under bad metrics: every check ends, and what
cannot be trusted is never a pass."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any

import pytest

from modeldeploy.api.spec import Analysis
from modeldeploy.api.status import CheckResult, Counters, PodCounters, Verdict
from modeldeploy.probes import analysis as probe_analysis
from modeldeploy.probes.providers import MetricsUnavailableError, PrometheusApi, Target
from modeldeploy.rollout import analysis
from modeldeploy.rollout.metrics import quantile
from modeldeploy.rollout.types import Check
from modeldeploy.rollout.window import Window
from tests.support.scripted_http import ScriptedServer

from .test_canary import SPEC

pytestmark = pytest.mark.timeout(60)
NOW = "2026-01-01T00:00:10Z"
HIST = ':tensorflow:serving:request_latency_bucket{model_name="mnist",API="predict",entrypoint="REST"'
OK_METRICS = (
    ':tensorflow:serving:request_count{model_name="mnist",status="OK"} 100\n'
    f'{HIST},le="10"}} 100\n'
    f'{HIST},le="+Inf"}} 100\n'
)
ERRORS = ':tensorflow:serving:request_count{{model_name="mnist",status="INTERNAL"}} {}\n'


@pytest.fixture
def replies() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    yield server
    server.stop()


def direct_check(replies: ScriptedServer, text: bytes, spec: Analysis = SPEC) -> Any:
    replies.bodies["/monitoring/prometheus/metrics"] = text
    from modeldeploy.probes import providers

    provider = providers.DirectScrape(port=replies.port)
    target = Target("ml", "mnist", 2, (("pod-a", "127.0.0.1"),), 5.0)
    try:
        window, counters = provider.window(target, None)
    except providers.MetricsUnavailableError as exc:
        return Check(CheckResult(at=NOW, verdict=Verdict.INCONCLUSIVE, message=str(exc)))
    return Check(analysis.evaluate(window, spec, NOW), counters)


@pytest.mark.parametrize(
    ("name", "body"),
    [
        # Bad values on the error count, beside 100 OK requests: judged, they would pass.
        ("NaN count", (OK_METRICS + ERRORS.format("NaN")).encode()),
        ("+Inf count", (OK_METRICS + ERRORS.format("+Inf")).encode()),
        ("garbage count", OK_METRICS.replace(" 100\n", " lots\n", 1).encode()),
        ("negative count", (OK_METRICS + ERRORS.format("-5")).encode()),
        ("not UTF-8", b"\xff\xfe" + OK_METRICS.encode()),
        ("huge", OK_METRICS.encode() + b"#" * (3 << 20)),
    ],
)
def test_bad_metrics_are_inconclusive_never_a_pass_nor_a_crash(
    replies: ScriptedServer, name: str, body: bytes
) -> None:
    check = direct_check(replies, body)
    assert check.result.verdict is Verdict.INCONCLUSIVE, name
    assert len(check.result.message) <= 300
    assert check.counters is None, "counters read from a bad page must not be kept"
    json.dumps(check.result.model_dump(by_alias=True), allow_nan=False)


def test_a_dripped_reply_is_cut_at_the_deadline(replies: ScriptedServer) -> None:
    replies.drip_seconds = 0.5  # 4 bytes every half second: minutes for the whole page
    started = time.monotonic()
    check = direct_check(replies, OK_METRICS.encode())
    assert time.monotonic() - started < 5
    assert check.result.verdict is Verdict.INCONCLUSIVE


def test_no_requests_with_min_requests_zero_is_inconclusive() -> None:
    spec = Analysis.model_validate({**SPEC.model_dump(by_alias=True), "minRequests": 0})
    result = analysis.evaluate(Window(0, 0, None), spec, NOW)
    assert result.verdict is Verdict.INCONCLUSIVE


def test_missing_or_nan_latency_is_never_a_pass_when_latency_is_judged() -> None:
    assert analysis.evaluate(Window(100, 0, None), SPEC, NOW).verdict is Verdict.INCONCLUSIVE
    assert analysis.evaluate(Window(100, 0, math.nan), SPEC, NOW).verdict is Verdict.INCONCLUSIVE
    no_latency_rule = Analysis.model_validate({"minRequests": 10, "successRate": {"min": 0.9}})
    assert analysis.evaluate(Window(100, 0, None), no_latency_rule, NOW).verdict is Verdict.PASSED


def test_a_p99_beyond_the_last_bucket_fails() -> None:
    buckets = {"10000": 10.0, "20000": 20.0, "+Inf": 100.0}  # 80% slower than the last bound
    assert quantile(0.99, buckets) == math.inf
    result = analysis.evaluate(Window(100, 0, math.inf), SPEC, NOW)
    assert result.verdict is Verdict.FAILED
    assert "above the largest bucket" in result.message


def test_one_restarted_pod_does_not_hide_its_errors(replies: ScriptedServer) -> None:
    """Pod b restarted and failed since: summed counters look like 10 good requests."""
    from modeldeploy.probes import providers

    def page(ok: int, errors: int) -> bytes:
        return (
            f':tensorflow:serving:request_count{{model_name="mnist",status="OK"}} {ok}\n'
            f':tensorflow:serving:request_count{{model_name="mnist",status="INTERNAL"}} {errors}\n'
            f'{HIST},le="10"}} {ok + errors}\n'
            f'{HIST},le="+Inf"}} {ok + errors}\n'
        ).encode()

    second = ScriptedServer()
    try:
        provider_a = providers.DirectScrape(port=replies.port)
        target = Target("ml", "mnist", 2, (("a", "127.0.0.1"),), 5.0)
        # Pod a: 1000 OK then 1100 OK. Pod b (own port): 1000 OK then, restarted, 0 OK and 500 errors.
        replies.bodies["/monitoring/prometheus/metrics"] = page(1000, 0)
        second.bodies["/monitoring/prometheus/metrics"] = page(1000, 0)
        both = _TwoPorts(replies.port, second.port)
        _, counters = both.window(
            Target("ml", "mnist", 2, (("a", "127.0.0.1"), ("b", "127.0.0.2")), 5.0), None
        )
        replies.bodies["/monitoring/prometheus/metrics"] = page(1110, 0)
        second.bodies["/monitoring/prometheus/metrics"] = page(0, 500)
        window, _ = both.window(
            Target("ml", "mnist", 2, (("a", "127.0.0.1"), ("b", "127.0.0.2")), 5.0), counters
        )
        assert (window.requests, window.errors) == (610, 500)
        assert analysis.evaluate(window, SPEC, NOW).verdict is Verdict.FAILED
        del provider_a, target
    finally:
        second.stop()


class _TwoPorts:
    """DirectScrape, but pod b's server listens on another port of 127.0.0.1 (tests only)."""

    def __init__(self, port_a: int, port_b: int) -> None:
        from modeldeploy.probes import providers

        self.scrapers = {"a": providers.DirectScrape(port=port_a), "b": providers.DirectScrape(port=port_b)}

    def window(self, target: Target, previous: Any) -> Any:
        from modeldeploy.probes import providers

        return providers.scrape_pods(
            {name: self.scrapers[name].scrape(target.model, "127.0.0.1") for name, _ in target.pods}, previous
        )


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("a list", b"[]"),
        ("no data.result", json.dumps({"status": "success", "data": {}}).encode()),
        (
            "a non-number",
            json.dumps({"status": "success", "data": {"result": [{"value": [1, "x"]}]}}).encode(),
        ),
        ("a 2 MB error", json.dumps({"status": "error", "error": "e" * (2 << 20)}).encode()),
        ("not JSON", b"<html>proxy error</html>"),
        ("nested too deep", b'{"status": "success", "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    ],
)
def test_prometheus_answers_that_cannot_be_read_are_inconclusive(
    replies: ScriptedServer, name: str, body: bytes
) -> None:
    replies.bodies["/api/v1/query"] = body
    spec = Analysis.model_validate(
        {**SPEC.model_dump(by_alias=True), "prometheus": {"address": f"http://127.0.0.1:{replies.port}"}}
    )
    check = probe_analysis.check(spec, Target("ml", "mnist", 2, (), 5.0), None, NOW)
    assert check.result.verdict is Verdict.INCONCLUSIVE, name
    assert len(check.result.message) <= 300, name


def prometheus_answer(value: str) -> bytes:
    return json.dumps({"status": "success", "data": {"result": [{"value": [1, value]}]}}).encode()


@pytest.mark.parametrize("bad", ["NaN", "+Inf", "-Inf"])
def test_a_non_finite_prometheus_error_count_is_inconclusive(replies: ScriptedServer, bad: str) -> None:
    replies.queries = {"status!=": prometheus_answer(bad), "histogram_quantile": prometheus_answer("5000")}
    replies.bodies["/api/v1/query"] = prometheus_answer("100")  # the request count
    spec = Analysis.model_validate(
        {**SPEC.model_dump(by_alias=True), "prometheus": {"address": f"http://127.0.0.1:{replies.port}"}}
    )
    check = probe_analysis.check(spec, Target("ml", "mnist", 2, (), 5.0), None, NOW)
    assert check.result.verdict is Verdict.INCONCLUSIVE
    json.dumps(check.result.model_dump(by_alias=True), allow_nan=False)


@pytest.mark.parametrize("bad", ["NaN", "+Inf", "-Inf", "-3"])
@pytest.mark.parametrize(("query", "what"), [("status!=", "errors"), ("sum(increase(", "requests")])
def test_a_prometheus_count_that_is_not_a_count_is_refused_where_it_is_read(
    replies: ScriptedServer, bad: str, query: str, what: str
) -> None:
    """The window is refused as it is read: the verdict's own guard sees only the canary's
    window, and a stable window read by the same code feeds the relative comparison."""
    replies.queries = {query: prometheus_answer(bad), "histogram_quantile": prometheus_answer("5000")}
    replies.bodies["/api/v1/query"] = prometheus_answer("100")
    api = PrometheusApi(f"http://127.0.0.1:{replies.port}")
    with pytest.raises(MetricsUnavailableError, match=f"for the {what}: not a count"):
        api.window(Target("ml", "mnist", 2, (), 5.0), None)


@pytest.mark.parametrize("bad", ["NaN", "+Inf", "-1"])
def test_a_prometheus_bucket_count_that_is_not_a_count_makes_the_histogram_unreadable(
    replies: ScriptedServer, bad: str
) -> None:
    bucket = {"metric": {"le": "+Inf"}, "value": [1, bad]}
    answer = json.dumps({"status": "success", "data": {"result": [bucket]}}).encode()
    replies.queries = {"sum by (le) (increase(": answer, "histogram_quantile": prometheus_answer("5000")}
    replies.bodies["/api/v1/query"] = prometheus_answer("100")
    api = PrometheusApi(f"http://127.0.0.1:{replies.port}", histogram=True)
    with pytest.raises(MetricsUnavailableError, match="for the latency buckets: not a count"):
        api.window(Target("ml", "mnist", 2, (), 5.0), None)


@pytest.mark.parametrize("bad", ["NaN", "+Inf"])
def test_non_finite_prometheus_answers_are_inconclusive_and_stay_valid_json(
    replies: ScriptedServer, bad: str
) -> None:
    replies.bodies["/api/v1/query"] = prometheus_answer(bad)  # every query
    spec = Analysis.model_validate(
        {**SPEC.model_dump(by_alias=True), "prometheus": {"address": f"http://127.0.0.1:{replies.port}"}}
    )
    check = probe_analysis.check(spec, Target("ml", "mnist", 2, (), 5.0), None, NOW)
    assert check.result.verdict is Verdict.INCONCLUSIVE
    json.dumps(check.result.model_dump(by_alias=True), allow_nan=False)


@pytest.mark.parametrize(
    "window",
    [
        Window(100, math.nan, 5.0),
        Window(math.inf, 0, 5.0),
        Window(math.inf, math.inf, 5.0),
        Window(100, -5, 5.0),
    ],
)
def test_counts_that_are_not_finite_counts_are_never_judged(window: Window) -> None:
    result = analysis.evaluate(window, SPEC, NOW)
    assert result.verdict is Verdict.INCONCLUSIVE
    json.dumps(result.model_dump(by_alias=True), allow_nan=False)


def test_the_status_model_never_holds_a_non_finite_number() -> None:
    result = CheckResult(
        at=NOW,
        verdict=Verdict.INCONCLUSIVE,
        requests=math.inf,
        success_rate=math.nan,
        latency_p99_ms=-math.inf,
    )
    assert (result.requests, result.success_rate, result.latency_p99_ms) == (None, None, None)
    with pytest.raises(ValueError, match="finite"):
        PodCounters(requests=math.nan)
    with pytest.raises(ValueError, match="finite"):
        Counters(buckets={"10": math.inf})


def test_the_canary_pods_are_scraped_at_once_not_one_after_another() -> None:
    """Each scrape may take its whole timeout: asked one after another, twenty slow pods
    would hold a worker twenty times as long. A barrier only the pods asked together pass."""
    import threading

    from modeldeploy.api.status import PodCounters
    from modeldeploy.probes import providers

    pods = tuple((f"mnist-v3-{i}", f"127.1.0.{i + 10}") for i in range(5))
    together = threading.Barrier(len(pods), timeout=10)

    class Together(providers.DirectScrape):
        def scrape(self, model: str, ip: str) -> PodCounters:
            together.wait()  # BrokenBarrierError unless every pod is being asked at once
            return PodCounters(requests=10)

    window, counters = Together().window(Target("ml", "mnist", 3, pods, 5.0), None)
    assert window.requests == 50
    assert counters is not None
    assert sorted(counters.pods) == sorted(name for name, _ in pods)
