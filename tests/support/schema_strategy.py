"""Hypothesis strategies drawn from a CRD's OpenAPI schema: values near and across every
bound the schema states (and arbitrary ones where it states none), so a fuzz test reaches
both what admission refuses and what it lets through to the operator."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import strategies as st

Json = Any
MAX_ITEMS = 4  # arrays longer than this add time, not cases
TEXT_ALPHABET = st.characters(codec="utf-8", exclude_categories=["Cs"])
# Strings that mean something to some field: quantities, durations, names, URLs, flags.
MEANINGFUL = (
    "",
    "0",
    "1",
    "-1",
    "1.5",
    "1e3",
    "100m",
    "1Gi",
    "2Gi",
    "NaN",
    "1s",
    "500ms",
    "1h30m",
    "tensorflow/serving:2.18.0",
    "Bad Name",
    "a" * 64,
    "UPPER",
    "x.y-z",
    "--port=1",
    "--model_name=other",
    "--enable_batching",
    "http://127.0.0.1:9090",
    "s3://bucket/key",
    "pvc://claim/sub",
    "file:///models-store/mnist",
    "héllo",
    "a b",
)

# Keys of the free-form objects (resources, gateway parentRefs) the operator reads.
KEYS = st.sampled_from(
    (
        "requests",
        "limits",
        "cpu",
        "memory",
        "nvidia.com/gpu",
        "name",
        "namespace",
        "sectionName",
        "port",
        "kind",
    )
) | st.sampled_from(MEANINGFUL)


def _json_values() -> st.SearchStrategy[Json]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.sampled_from(MEANINGFUL))
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)),
        max_leaves=6,
    )


def _string(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    max_length = schema.get("maxLength")
    free = st.text(TEXT_ALPHABET, max_size=min(max_length or 40, 40)) | st.sampled_from(MEANINGFUL)
    if "pattern" not in schema:
        return free
    try:
        matching = st.from_regex(re.compile(schema["pattern"]), fullmatch=True)
    except re.error:
        return free
    if max_length is not None:
        matching = matching.filter(lambda s: len(s) <= max_length + 2)  # a little past the bound
    return st.one_of(matching, matching, matching, free)  # mostly what the pattern allows


def _number(schema: dict[str, Any], integer: bool) -> st.SearchStrategy[Any]:
    low, high = schema.get("minimum"), schema.get("maximum")
    edges = [v + d for v in (low, high) if v is not None for d in (-1, 0, 1)]
    if integer:
        span = st.integers(
            min_value=int(low) if low is not None else -10, max_value=int(high) if high is not None else 10**6
        )
        return st.one_of(span, st.sampled_from(edges)) if edges else span
    floats = st.floats(
        min_value=low if low is not None else -10.0,
        max_value=high if high is not None else 10**6,
        allow_nan=False,
        allow_infinity=False,
    )
    return st.one_of(floats, st.sampled_from(edges)) if edges else floats


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Json]:
    """Values for one OpenAPI v3 (structural) schema node."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties") or {}
        if not properties:
            if isinstance(schema.get("additionalProperties"), dict):
                return st.dictionaries(KEYS, from_schema(schema["additionalProperties"]), max_size=3)
            return st.dictionaries(KEYS, _json_values(), max_size=3)
        required = set(schema.get("required") or ())
        return st.fixed_dictionaries(
            {k: from_schema(v) for k, v in properties.items() if k in required},
            optional={k: from_schema(v) for k, v in properties.items() if k not in required},
        )
    if kind == "array":
        return st.lists(
            from_schema(schema["items"]), max_size=min(schema.get("maxItems", MAX_ITEMS), MAX_ITEMS)
        )
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        return _number(schema, integer=True)
    if kind == "number":
        return _number(schema, integer=False)
    if kind == "boolean":
        return st.booleans()
    return _json_values()
