"""The protocol between the operator and the model fetcher init container: its arguments,
the environment that bounds it, and the one-line termination message it writes back.

Standard library only: the fetcher's image installs the package without dependencies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .redaction import redact

PROGRAM = "modeldeploy-fetch"
USAGE = f"usage: {PROGRAM} <storageUri> <version> <model dir>"

# ----- the environment: limits the operator sets, read by the fetcher -----
# Bytes the fetch may write; the operator sets it from spec.runtime.modelVolumeSizeLimit so the
# fetcher stops with a reason before the kubelet would evict the pod for a full volume.
MAX_BYTES_ENV = "MODELDEPLOY_FETCH_MAX_BYTES"
MAX_ENTRIES_ENV = "MODELDEPLOY_FETCH_MAX_ENTRIES"
MAX_RATIO_ENV = "MODELDEPLOY_FETCH_MAX_RATIO"
# Seconds the whole fetch may take, every request and archive included: a storage server that
# stalls or trickles fails the fetch with a reason instead of holding the pod in Init forever.
DEADLINE_ENV = "MODELDEPLOY_FETCH_DEADLINE_SECONDS"
DEFAULT_DEADLINE_SECONDS = 3600.0
# spec.model.digest: the digest the fetched version must have (the format the success line
# reports, DIGEST_PATTERN); a version that differs is refused and never reaches TF Serving.
EXPECTED_DIGEST_ENV = "MODELDEPLOY_FETCH_EXPECTED_DIGEST"
DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"

# ----- the termination message -----
# Where the kubelet reads a container's termination message by default; the variable moves
# it for runs outside Kubernetes (tests, a shell).
TERMINATION_LOG = "/dev/termination-log"
TERMINATION_LOG_ENV = "MODELDEPLOY_TERMINATION_LOG"
# A fetcher killed before it wrote its message (out of memory) still leaves a reason: the
# kubelet then takes the tail of its log, so the reader takes the last line of either.
TERMINATION_MESSAGE_POLICY = "FallbackToLogsOnError"
FAILURE_PREFIX = "fetch failed: "
EXIT_FETCHED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_SUCCESS = re.compile(
    r"fetched version (?P<version>\d+) of (?P<uri>\S+?)(?: from folder (?P<folder>\d+))?: "
    r"(?P<digest>sha256:[0-9a-f]{64}) \((?P<files>\d+) files, (?P<size>\d+) bytes\)"
)


# ----- the arguments -----


@dataclass(frozen=True)
class FetchRequest:
    """One fetch: ``<storage_uri>/<version>/`` lands in ``<model_dir>/<version>/``."""

    storage_uri: str
    version: int
    model_dir: str


class ArgumentError(ValueError):
    """Arguments that name no fetch; ``str()`` is the one-line reason."""


class UsageError(ArgumentError):
    """Not three arguments: the caller is not speaking the protocol at all."""


def build_args(request: FetchRequest) -> list[str]:
    """The init container's ``args`` (its image's entry point is ``PROGRAM``)."""
    return [request.storage_uri, str(request.version), request.model_dir]


def parse_args(args: list[str]) -> FetchRequest:
    """The request ``build_args`` wrote; UsageError or ArgumentError if it is not one."""
    if len(args) != 3:
        raise UsageError(USAGE)
    uri, version_text, model_dir = args
    if not version_text.isdigit():
        raise ArgumentError(f"version must be a whole number, got {version_text!r}")
    return FetchRequest(uri, int(version_text), model_dir)


def limits_env(
    max_bytes: int, *, expected_digest: str | None = None, deadline_seconds: float | None = None
) -> dict[str, str]:
    """The variables the operator sets on the fetcher (the other limits keep their defaults).

    Optional ones are set only when given, so a pod template that needs none keeps its hash.
    """
    env = {MAX_BYTES_ENV: str(max_bytes)}
    if expected_digest:
        env[EXPECTED_DIGEST_ENV] = expected_digest
    if deadline_seconds is not None:
        env[DEADLINE_ENV] = f"{deadline_seconds:g}"
    return env


# ----- the termination message -----


@dataclass(frozen=True)
class FetchSuccess:
    """What a successful fetch reports; ``folder`` is the storage folder when it was padded."""

    storage_uri: str
    version: int
    digest: str
    files: int
    size: int
    folder: str = ""


def success_message(success: FetchSuccess) -> str:
    """The success line: the digest, and the counts and source a person checks it against."""
    padded = success.folder and success.folder != str(success.version)
    source = f" from folder {success.folder}" if padded else ""
    counts = f"({success.files} files, {success.size} bytes)"
    return f"fetched version {success.version} of {success.storage_uri}{source}: {success.digest} {counts}"


def failure_message(reason: str) -> str:
    """The failure line: the reason on one line, so it fits a status condition."""
    return FAILURE_PREFIX + " ".join(reason.split())


def parse_success(line: str) -> FetchSuccess | None:
    """The fields of a line ``success_message`` wrote, or None if it is not one."""
    match = _SUCCESS.fullmatch(line.strip())
    if match is None:
        return None
    return FetchSuccess(
        storage_uri=match["uri"],
        version=int(match["version"]),
        digest=match["digest"],
        files=int(match["files"]),
        size=int(match["size"]),
        folder=match["folder"] or "",
    )


@dataclass(frozen=True)
class FetchReport:
    """A finished fetcher as the operator reads it from the container's terminated state."""

    succeeded: bool
    line: str  # the message's last line, redacted: what a person is shown
    digest: str | None = None

    @property
    def reason(self) -> str:
        """A failure's reason, without the prefix that marks the line as one."""
        return self.line.removeprefix(FAILURE_PREFIX)


def read_termination(exit_code: int, message: str) -> FetchReport:
    """Read back a terminated fetcher: its exit code and its termination message.

    The digest is searched for rather than the whole line parsed, so a success line that
    gains a field stays readable by an operator that does not know the field yet.
    """
    lines = redact(message).strip().splitlines()
    line = lines[-1] if lines else f"exit code {exit_code}"
    if exit_code != EXIT_FETCHED:
        return FetchReport(succeeded=False, line=line)
    match = _DIGEST.search(message)
    return FetchReport(succeeded=True, line=line, digest=match.group(0) if match else None)
