"""Secrets that URLs carry (user-info, signed query strings such as X-Amz-Signature or a
token) never reach a status, an event or a log: every text shown is passed through here.

Standard library only: the fetcher's image imports it without the operator's dependencies.
"""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@")
_QUERY = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#'\"]*)\?[^\s'\"#]*")


def redact(text: str) -> str:
    """``text`` with every URL's user-info and query string replaced."""
    return _QUERY.sub(r"\1?<redacted>", _USERINFO.sub(r"\1***@", text))
