"""The one error type the fetcher reports: a reason a person can act on."""

from __future__ import annotations


class FetchError(Exception):
    """A fetch failed; ``str()`` is one line, safe to show (no secrets)."""

    def __init__(self, reason: str) -> None:
        super().__init__(" ".join(reason.split()))
