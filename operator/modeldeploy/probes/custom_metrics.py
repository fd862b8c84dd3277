"""Custom analysis metrics read from Prometheus: each query for the canary (and for the stable
with maxDropVsStable), bounded in time and size as the built-in queries, then judged.

Never raises: a query that cannot be read is that metric's Inconclusive.
"""

from __future__ import annotations

import logging
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from ..api.spec import Analysis
from ..api.status import Verdict
from ..rollout.bounded_json import loads_bounded
from ..rollout.custom_metrics import Judged, Reading, Subject, judge, judged_with, render
from ..rollout.types import Check
from ..rollout.window import MESSAGE_LIMIT
from . import bounded_http
from .providers import MAX_REPLY_BYTES, SCRAPE_TIMEOUT_SECONDS

LOG = logging.getLogger(__name__)
# Queries one check asks at a time: each is bounded, so a check takes about one timeout.
QUERIES_AT_ONCE = 8


@dataclass(frozen=True)
class Subjects:
    """Who the queries ask about: the canary, and the stable (None when none serves)."""

    canary: Subject
    stable: Subject | None


def one_value(body: Any) -> Reading:
    """The number a query answered: one series of an instant vector, or a scalar."""
    if not isinstance(body, dict) or body.get("status") != "success":
        return Reading(None, "Prometheus answered without success")
    data = body.get("data")
    kind = data.get("resultType") if isinstance(data, dict) else None
    result = data.get("result") if isinstance(data, dict) else None
    if kind == "scalar" and isinstance(result, list):
        return _number(result)
    if kind != "vector" or not isinstance(result, list):
        return Reading(None, f"the query answered a {str(kind)[:20]}, not one number")
    if not result:
        return Reading(None)
    if len(result) > 1:
        return Reading(None, f"the query answered {len(result)} series, not one: aggregate them (sum, avg)")
    first = result[0]
    return _number(first.get("value") if isinstance(first, dict) else None)


def _number(sample: Any) -> Reading:
    """The value of a [time, "value"] sample; NaN and infinities as Prometheus wrote them."""
    try:
        return Reading(float(sample[1]))
    except (TypeError, ValueError, IndexError, KeyError):
        return Reading(None, "Prometheus answered a sample that is not a number")


def ask(address: str, promql: str) -> Reading:
    """One instant query. Its answer's body is never copied into a message: whatever answered
    (a proxy, another service) may say what the tenant must not read."""
    url = f"{address.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        status, raw = bounded_http.get(url, SCRAPE_TIMEOUT_SECONDS, MAX_REPLY_BYTES)
    except bounded_http.FetchError as exc:
        return Reading(None, f"no answer from Prometheus: {exc}")
    if status == 400:
        return Reading(None, "Prometheus refused the query (HTTP 400): check its PromQL")
    if status != 200:
        return Reading(None, f"Prometheus answered HTTP {status}")
    try:
        return one_value(loads_bounded(raw))
    except ValueError:  # UnicodeDecodeError included
        return Reading(None, "Prometheus did not answer JSON")


def read_and_judge(spec: Analysis, subjects: Subjects) -> list[Judged]:
    """Every metric of ``spec`` judged: the canary's queries and, for maxDropVsStable, the
    stable's, all asked at once."""
    if spec.prometheus is None or not spec.metrics:
        return []
    address = spec.prometheus.address
    asked: list[tuple[int, Subject]] = [(i, subjects.canary) for i in range(len(spec.metrics))]
    if subjects.stable is not None:
        asked += [
            (i, subjects.stable) for i, m in enumerate(spec.metrics) if m.max_drop_vs_stable is not None
        ]
    with ThreadPoolExecutor(max_workers=min(len(asked), QUERIES_AT_ONCE)) as queries:
        futures = {
            (i, subject.version): queries.submit(ask, address, render(spec.metrics[i].query, subject))
            for i, subject in asked
        }
        readings = {key: future.result() for key, future in futures.items()}
    stable = subjects.stable

    def stable_reading(i: int) -> Reading | None:
        return readings.get((i, stable.version)) if stable is not None else None

    return [
        judge(metric, readings[(i, subjects.canary.version)], stable_reading(i))
        for i, metric in enumerate(spec.metrics)
    ]


def with_custom_metrics(spec: Analysis, subjects: Subjects, check: Check) -> Check:
    """``check`` judged with the custom metrics too. Never raises: a bug here makes the check
    Inconclusive, and the progress deadline still runs."""
    if not spec.metrics:
        return check
    try:
        judged = read_and_judge(spec, subjects)
    except Exception as exc:  # never freeze the canary on a bug: the check says what went wrong
        LOG.exception("custom metrics of %s/%s failed", subjects.canary.namespace, subjects.canary.name)
        message = f"custom metrics failed: {type(exc).__name__}: {exc}"[:MESSAGE_LIMIT]
        # A failed built-in check still fails: only what the metrics would have said is lost.
        verdict = Verdict.FAILED if check.result.verdict is Verdict.FAILED else Verdict.INCONCLUSIVE
        unread = check.result.model_copy(
            update={"verdict": verdict, "message": f"{check.result.message}; {message}"[:MESSAGE_LIMIT]}
        )
        return replace(check, result=unread)
    return replace(check, result=judged_with(check.result, judged))
