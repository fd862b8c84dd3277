"""Time as status carries it: RFC 3339 in UTC, and Go-style durations in the spec.

Canary times keep milliseconds (steps are timed to well under a second);
metav1 times (conditions, history, events) carry whole seconds.
"""

from __future__ import annotations

import datetime
import re

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration such as ``90s``, ``1m30s`` or ``250ms``."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not a duration like 30s, 5m or 1h30m")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


def parse_time(text: str) -> datetime.datetime:
    """RFC 3339 in UTC, with or without fractional seconds."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(datetime.UTC)


def format_time(moment: datetime.datetime) -> str:
    """RFC 3339 with milliseconds, as status carries canary times."""
    return moment.astimezone(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_seconds(text: str) -> str:
    """A timestamp at whole seconds: metav1 times (conditions, history, events) carry no fraction."""
    return parse_time(text).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_now() -> str:
    """Now, as status carries canary times."""
    return format_time(datetime.datetime.now(datetime.UTC))
