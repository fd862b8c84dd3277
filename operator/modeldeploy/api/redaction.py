"""Secrets that URLs carry (user-info, signed query strings such as X-Amz-Signature or a
token) never reach a status, an event or a log: every text shown is passed through here.

Standard library only: the fetcher's image imports it without the operator's dependencies.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@")
_QUERY = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#'\"]*)\?[^\s'\"#]*")
# Shorter pieces are not searched for: "a" as a password would blank out every "a" of a line.
_MIN_SECRET_LENGTH = 3
_PERCENT_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every URL's user-info and query string replaced, and every one of
    ``secrets`` wherever it stands (a message may quote a piece of a URL without its scheme:
    ``nonnumeric port: 'pw@host'``)."""
    text = _QUERY.sub(r"\1?<redacted>", _USERINFO.sub(r"\1***@", text))
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= _MIN_SECRET_LENGTH:
            text = text.replace(secret, "***")
    return text


def secrets_of(url: str) -> list[str]:
    """The pieces of ``url`` that may be secret: its user-info, password and query string, as
    written and decoded (a user name alone is not: it may be a word of the path too). Plain
    string work, so a URL too malformed for ``urllib`` still gives its pieces."""
    authority = url.partition("://")[2].split("/", 1)[0].split("?", 1)[0]
    userinfo = authority.rpartition("@")[0]
    query = url.partition("?")[2].split("#", 1)[0]
    password = userinfo.partition(":")[2]
    pieces = [userinfo, password, query]
    return sorted({p for piece in pieces if piece for p in (piece, _percent_decoded(piece))})


def _percent_decoded(text: str) -> str:
    """``text`` with its %XX escapes decoded, as a server (and an error quoting it) reads them."""
    raw = _PERCENT_ESCAPE.sub(lambda match: bytes.fromhex(match[1].decode()), text.encode())
    return raw.decode("utf-8", "replace")
