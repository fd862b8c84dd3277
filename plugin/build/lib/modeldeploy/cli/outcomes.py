"""Decisions the plugin makes from a resource's status alone: whether a rollout has ended and
how (``status --watch``'s exit code), and which version ``undo`` goes back to."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

Body = dict[str, Any]


class Outcome(IntEnum):
    """``status --watch`` exit codes, for CI pipelines that wait on a rollout."""

    READY = 0
    FAILED = 1  # rolled back, aborted, failed to load, or degraded
    TIMED_OUT = 2


def rollout_outcome(md: Body) -> Outcome | None:
    """Ready or failed at the current generation; None while the rollout goes on, or while the
    status still describes an older spec (just after an edit)."""
    status = md.get("status") or {}
    if status.get("observedGeneration") != md["metadata"].get("generation"):
        return None
    phase = status.get("phase")
    if phase == "Ready":
        return Outcome.READY
    if phase in ("Degraded", "Failed"):
        return Outcome.FAILED
    return None


class UndoError(ValueError):
    """There is no version to go back to, or that version would not be rolled."""


def undo_target(md: Body, to_version: int | None) -> int:
    """The version ``undo`` sets: ``to_version``; else, during a canary or after a rollback, the
    stable version (the new one is given up); else the version the stable one replaced."""
    status = md.get("status") or {}
    requested = md["spec"]["model"]["version"]
    stable = (status.get("stable") or {}).get("version")
    if to_version is not None:
        target = to_version
    elif stable is not None and stable != requested:
        target = stable
    else:
        promoted = [e for e in status.get("history") or [] if e["result"] == "Promoted"]
        replaced = [e["replaced"] for e in promoted if e["version"] == stable and e.get("replaced")]
        earlier = [e["version"] for e in promoted if e["version"] != stable]
        if not replaced and not earlier:
            raise UndoError("no earlier promoted version in status.history; name one with --to-version")
        target = replaced[-1] if replaced else earlier[-1]
    if target == requested:
        raise UndoError(f"spec.model.version is already {target}")
    if target in (status.get("failedVersions") or []):
        raise UndoError(f"version {target} failed before and would not be rolled; run retry after undo")
    return target
