"""A custom analysis metric: a named PromQL query with placeholders, and its bounds.

The query's text is checked here and in the CRD alike: only the four placeholders the
operator fills in may appear, and ``{{version}}`` must, or the metric would not judge the
canary (nor, for ``maxDropVsStable``, tell it from the stable).
"""

from __future__ import annotations

import math
from typing import ClassVar

from pydantic import Field, model_validator

from .base import CamelModel

PLACEHOLDERS = ("namespace", "name", "version", "window")
VERSION_PLACEHOLDER = "{{version}}"
# Every "{{" opens a known placeholder; a single "{" (label matchers) is PromQL's own. One
# pattern for Python's re, the schema and the API server's RE2 (no lookahead in RE2).
QUERY_PATTERN = r"^(?:[^{]|\{[^{]|\{$|\{\{(?:" + "|".join(PLACEHOLDERS) + r")\}\})*$"
METRIC_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Queries one check asks at most (each twice with maxDropVsStable): status and time stay bounded.
MAX_METRICS = 8
MAX_QUERY_LENGTH = 2048


# Bounds on a metric's thresholds: wide enough for any figure a query answers in its own
# units, and finite so the API server can estimate the cost of the rules that compare them.
METRIC_BOUND = 1e15


class CustomMetric(CamelModel):
    """A PromQL query judged at every check: absolute bounds on the canary's value, and/or the
    largest drop below the same query's value for the stable version. A query that answers
    nothing, NaN or an infinity is Inconclusive, never Passed."""

    name: str = Field(min_length=1, max_length=63, pattern=METRIC_NAME_PATTERN)
    """The metric's name in status and messages (lower case, digits and '-')."""
    query: str = Field(min_length=1, max_length=MAX_QUERY_LENGTH, pattern=QUERY_PATTERN)
    """PromQL answering one number (one series, or a scalar). Placeholders, each put inside a
    double-quoted label value except the window: {{namespace}}, {{name}} (the
    ModelDeployment's), {{version}} (required: the canary's, or the stable's for
    maxDropVsStable), {{window}} (analysis.window as a PromQL duration, e.g. 120s)."""
    min: float | None = Field(default=None, ge=-METRIC_BOUND, le=METRIC_BOUND)
    """The lowest value the canary may show."""
    max: float | None = Field(default=None, ge=-METRIC_BOUND, le=METRIC_BOUND)
    """The highest value the canary may show."""
    max_drop_vs_stable: float | None = Field(default=None, ge=0, le=METRIC_BOUND)
    """How far the canary's value may fall below the stable's (same query, the stable's
    version), in the query's own units; for a metric where lower is better, bound it with max
    or negate the query."""

    cel_rules: ClassVar[list[tuple[str, str, str]]] = [
        (
            "has(self.min) || has(self.max) || has(self.maxDropVsStable)",
            "a metric needs a bound: min, max or maxDropVsStable",
            "",
        ),
        ("!has(self.min) || !has(self.max) || self.min <= self.max", "min must not exceed max", ".min"),
        (
            f"self.query.contains('{VERSION_PLACEHOLDER}')",
            "query must select the version with {{version}}: the metric judges the canary by it",
            ".query",
        ),
    ]

    @model_validator(mode="after")
    def _bounded_and_versioned(self) -> CustomMetric:
        bounds = (self.min, self.max, self.max_drop_vs_stable)
        if all(bound is None for bound in bounds):
            raise ValueError(f"metric {self.name}: a metric needs a bound: min, max or maxDropVsStable")
        if any(bound is not None and not math.isfinite(bound) for bound in bounds):
            raise ValueError(f"metric {self.name}: bounds must be finite numbers")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"metric {self.name}: min must not exceed max")
        if VERSION_PLACEHOLDER not in self.query:
            raise ValueError(f"metric {self.name}: query must select the version with {VERSION_PLACEHOLDER}")
        return self


# The rules on analysis.metrics as a list: placed on Analysis, which holds it.
METRICS_CEL_RULES = [
    (
        "!has(self.metrics) || size(self.metrics) == 0 || has(self.prometheus)",
        "metrics need analysis.prometheus: their queries are asked of Prometheus",
        ".metrics",
    ),
    (
        "!has(self.metrics) || self.metrics.all(a, self.metrics.exists_one(b, b.name == a.name))",
        "metrics names must be unique",
        ".metrics",
    ),
]
