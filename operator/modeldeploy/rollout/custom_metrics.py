"""Custom analysis metrics: their queries with the placeholders filled in, each one's verdict,
and the check's verdict with them. Pure.

Only a finite value measured now can pass: no series, NaN or an infinity is Inconclusive.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..api.custom_metric import PLACEHOLDERS, CustomMetric
from ..api.status import CheckResult, MetricResult, Verdict
from .window import MESSAGE_LIMIT

_PLACEHOLDER = re.compile(r"\{\{(" + "|".join(PLACEHOLDERS) + r")\}\}")
# The order a check's message names its parts in: what decided the verdict first, so the
# message's limit cuts what passed, never why a canary rolls back.
_SEVERITY = {Verdict.FAILED: 0, Verdict.INCONCLUSIVE: 1, Verdict.PASSED: 2}


@dataclass(frozen=True)
class Subject:
    """What a query's placeholders name: the resource, one of its versions, the window."""

    namespace: str
    name: str
    version: int
    window_seconds: float


@dataclass(frozen=True)
class Reading:
    """One query's answer: its value (None: no series), or why it could not be read."""

    value: float | None
    problem: str | None = None


@dataclass(frozen=True)
class Judged:
    """One metric's result for status, and the words the check's message gives it."""

    result: MetricResult
    text: str


def promql_string(value: str) -> str:
    """``value`` escaped for the inside of a double-quoted PromQL string: a backslash, a quote
    or a line break in it can never end the string or change the query around it."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")


def promql_duration(seconds: float) -> str:
    """A PromQL duration: whole seconds, or milliseconds for a window not in whole seconds."""
    millis = max(round(seconds * 1000), 1)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def render(query: str, subject: Subject) -> str:
    """``query`` with its placeholders filled in for ``subject``, in one pass: a value is never
    read again for placeholders."""
    values = {
        "namespace": promql_string(subject.namespace),
        "name": promql_string(subject.name),
        "version": str(subject.version),
        "window": promql_duration(subject.window_seconds),
    }
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], query)


def _finite(reading: Reading | None) -> float | None:
    if reading is None or reading.value is None or not math.isfinite(reading.value):
        return None
    return reading.value


def _unread(reading: Reading) -> str:
    """Why a reading judges nothing: its problem, no series, or the non-finite value."""
    if reading.problem is not None:
        return reading.problem
    return "no data" if reading.value is None else f"answered {reading.value}"


def judge(metric: CustomMetric, canary: Reading, stable: Reading | None) -> Judged:
    """The metric's verdict on the canary's reading, and on the stable's (None: no stable
    version to ask) for maxDropVsStable."""
    value, stable_value = _finite(canary), _finite(stable)
    label = f"metric {metric.name}"

    def judged(verdict: Verdict, text: str) -> Judged:
        result = MetricResult(name=metric.name, value=value, stable_value=stable_value, result=verdict)
        return Judged(result, f"{label} {text}")

    if value is None:
        return judged(Verdict.INCONCLUSIVE, _unread(canary))
    problems = []
    if metric.min is not None and value < metric.min:
        problems.append(f"{value:.4g} < min {metric.min:g}")
    if metric.max is not None and value > metric.max:
        problems.append(f"{value:.4g} > max {metric.max:g}")
    compared = ""
    if metric.max_drop_vs_stable is not None and stable_value is not None:
        drop = stable_value - value
        compared = f" vs stable {stable_value:.4g}"
        if drop > metric.max_drop_vs_stable:
            problems.append(
                f"{value:.4g} is {drop:.4g} below the stable's {stable_value:.4g} "
                f"> maxDropVsStable {metric.max_drop_vs_stable:g}"
            )
    if problems:
        return judged(Verdict.FAILED, ", ".join(problems))
    if metric.max_drop_vs_stable is not None and stable_value is None:
        why = "no stable version" if stable is None else f"the stable's query: {_unread(stable)}"
        return judged(Verdict.INCONCLUSIVE, f"{value:.4g}, nothing to compare with ({why})")
    return judged(Verdict.PASSED, f"{value:.4g}{compared}")


def judged_with(result: CheckResult, metrics: list[Judged]) -> CheckResult:
    """The check with its custom metrics: any Failed fails it, else any Inconclusive makes
    it Inconclusive; its message names what decided first."""
    if not metrics:
        return result
    verdicts = [result.verdict, *(m.result.result for m in metrics)]
    verdict = min(verdicts, key=_SEVERITY.__getitem__)
    parts = [(result.verdict, result.message), *((m.result.result, m.text) for m in metrics)]
    parts.sort(key=lambda part: _SEVERITY[part[0]])  # stable: the built-in check first among equals
    message = "; ".join(text for _, text in parts if text)
    return result.model_copy(
        update={
            "verdict": verdict,
            "message": message[:MESSAGE_LIMIT],
            "metrics": [m.result for m in metrics],
        }
    )
