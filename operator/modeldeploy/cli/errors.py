"""What the plugin says when it cannot do its job: one line, as kubectl says it, with the API
server's own message, and the exit code that goes with it. Never a traceback (--debug shows one)."""

from __future__ import annotations

import json
import re

import kubernetes
import urllib3
import yaml

from .follow import DeletedError
from .outcomes import ExitCode, UndoError

# urllib3 names the connection object before its reason: "HTTPSConnection(host=..., port=1): ".
_CONNECTION_PREFIX = re.compile(r"^\w+\(host=[^)]*\): ")


def one_line(text: str) -> str:
    return " ".join(text.split())


def server_message(exc: kubernetes.client.exceptions.ApiException) -> str:
    """The API server's own words (its Status message: which verb on which resource was
    refused, which object was not found or changed), kubectl's way: ``from server (Reason)``."""
    try:
        status = json.loads(exc.body or "")
    except ValueError:
        status = None
    if not isinstance(status, dict) or not status.get("message"):
        return f"from server: {exc.status} {exc.reason}"
    reason = status.get("reason") or exc.reason
    if exc.status == 401:
        return (
            f"You must be logged in to the server ({status['message']}): the token or certificate was refused"
        )
    return f"from server ({reason}): {status['message']}"


def connection_message(exc: urllib3.exceptions.HTTPError) -> str:
    """Where the plugin tried to connect and why it failed, without urllib3's retry wording."""
    pool = getattr(exc, "pool", None)
    cause = getattr(exc, "reason", None) or exc
    why = _CONNECTION_PREFIX.sub("", one_line(str(cause)))
    why = why.removeprefix("Failed to establish a new connection: ")
    where = f" {pool.host}:{pool.port}" if pool is not None else ""
    return f"unable to connect to the server{where}: {why}"


def describe(exc: BaseException) -> tuple[str, ExitCode]:
    """The line to print after ``error: `` and the exit code, for any error a command raises."""
    if isinstance(exc, kubernetes.client.exceptions.ApiException):
        return server_message(exc), ExitCode.API_ERROR
    if isinstance(exc, urllib3.exceptions.HTTPError):
        return connection_message(exc), ExitCode.API_ERROR
    if isinstance(exc, kubernetes.config.ConfigException):
        return f"kubeconfig: {one_line(str(exc))}", ExitCode.API_ERROR
    if isinstance(exc, yaml.YAMLError):
        return f"kubeconfig is not valid YAML: {one_line(str(exc))}", ExitCode.API_ERROR
    if isinstance(exc, UndoError):
        return str(exc), ExitCode.USAGE_ERROR
    if isinstance(exc, DeletedError | OSError):
        return one_line(str(exc)), ExitCode.API_ERROR
    # A fault of the plugin itself: still one line; --debug shows where.
    return f"{type(exc).__name__}: {one_line(str(exc))} (--debug shows the traceback)", ExitCode.API_ERROR
