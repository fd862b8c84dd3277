"""Decisions the plugin makes from a resource's status alone: whether a rollout has ended and
how (``status``'s exit code), the plugin's exit codes, and which version ``undo`` goes back to."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

Body = dict[str, Any]


class ExitCode(IntEnum):
    """The plugin's exit codes, each meaning one thing, for CI pipelines that act on them."""

    READY = 0  # done: the command succeeded; for status, the rollout is Ready
    FAILED = 1  # the rollout failed: rolled back, aborted, failed to load, or degraded
    TIMED_OUT = 2  # the rollout had not ended by --timeout (status without --watch: not yet)
    API_ERROR = 3  # no answer from the cluster: connection, kubeconfig, credentials, or refused
    USAGE_ERROR = 4  # the command line or the request makes no sense (bad flag, nothing to undo)
    INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


def rollout_outcome(md: Body) -> ExitCode | None:
    """Ready or failed at the current generation; None while the rollout goes on, or while the
    status still describes an older spec (just after an edit)."""
    status = md.get("status") or {}
    if status.get("observedGeneration") != md["metadata"].get("generation"):
        return None
    phase = status.get("phase")
    if phase == "Ready":
        return ExitCode.READY
    if phase in ("Degraded", "Failed"):
        return ExitCode.FAILED
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
