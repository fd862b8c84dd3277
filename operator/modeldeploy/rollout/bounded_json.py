"""JSON from outside the operator (pods, Prometheus, golden ConfigMaps), parsed with a bound
on its nesting."""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

# Deeper than any model answer, signature or query result; far below the interpreter's
# recursion limit, which json.loads and every walk over the parsed value would reach.
MAX_DEPTH = 64

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class TooDeepError(ValueError):
    """The document nests arrays and objects deeper than the bound."""


def nesting_depth(text: str) -> int:
    """How deep arrays and objects nest in ``text`` (brackets inside strings not counted).
    Counted on the text, so a hostile document costs no recursion."""
    brackets = _NOT_A_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(_STEP[c] for c in brackets), default=0)


def loads_bounded(raw: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads``, refusing (with a ValueError) a document nested deeper than ``max_depth``."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    if nesting_depth(text) > max_depth:
        raise TooDeepError(f"nested deeper than {max_depth} levels")
    return json.loads(text)
