"""Namespaces, kubectl and watches from a resourceVersion for the harnesses."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kubernetes

from .wait import wait_for


def kubectl_path() -> Path:
    """$KUBECTL, else the kubectl built with the local control plane (built if missing)."""
    if os.environ.get("KUBECTL"):
        return Path(os.environ["KUBECTL"])
    from testbed.cluster.localcluster import build_binaries

    return build_binaries() / "kubectl"


def changes_since(
    list_fn: Callable[..., Any], resource_version: str, seconds: int, *args: Any, **kwargs: Any
) -> list[Any]:
    """Every change (watch event: ``type``, ``object``) of a collection since
    ``resource_version``, in order: a watch from a resourceVersion replays each one, where
    polling would miss a blip. Watches for ``seconds``, the changes still to come included."""
    return list(
        kubernetes.watch.Watch().stream(
            list_fn, *args, resource_version=resource_version, timeout_seconds=seconds, **kwargs
        )
    )


def create_namespace(core: kubernetes.client.CoreV1Api, name: str, timeout: float = 30.0) -> None:
    """Create a namespace and wait for its default ServiceAccount: admission refuses pods until
    the controller-manager has made it."""
    core.create_namespace({"metadata": {"name": name}})
    wait_for(lambda: core.list_namespaced_service_account(name).items, timeout, what=f"{name}'s default SA")


def namespace_exists(core: kubernetes.client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespace(name)
        return True
    except kubernetes.client.ApiException as exc:
        if exc.status == 404:
            return False
        raise


def wait_namespace_deleted(
    core: kubernetes.client.CoreV1Api, name: str, timeout: float = 900.0, interval: float = 0.2
) -> None:
    """Wait until a namespace being deleted is gone: its finalizers empty it first."""
    wait_for(lambda: not namespace_exists(core, name), timeout, interval, what=f"{name} deleted")


@contextmanager
def temporary_namespace(core: kubernetes.client.CoreV1Api, prefix: str) -> Iterator[str]:
    """A fresh namespace ``<prefix>-<random>`` for one test, deleted afterwards."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    create_namespace(core, name)
    yield name
    core.delete_namespace(name)
