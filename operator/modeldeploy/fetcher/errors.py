"""The errors the fetcher reports: a reason a person can act on."""

from __future__ import annotations


class FetchError(Exception):
    """A fetch failed; ``str()`` is one line, safe to show (no secrets)."""

    def __init__(self, reason: str) -> None:
        super().__init__(" ".join(reason.split()))


class DeadlinePassed(BaseException):
    """The fetch's deadline passed while it waited (raised from a timer signal).

    A BaseException, so no ``except Exception`` of a storage client in between swallows it or
    retries; ``str()`` is one line, as FetchError's.
    """
