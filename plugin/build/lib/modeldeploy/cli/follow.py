"""Following one ModelDeployment as it changes: a watch on it (one object, by field selector),
resumed from the last resourceVersion, relisted when the API server says that is too old."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kubernetes

from ..api.names import GROUP, LABEL_NAME, PLURAL, VERSION
from .connection import Connection

Body = dict[str, Any]
# The longest the caller waits for news: ``get -w`` redraws its countdown and pods this often,
# ``status --watch`` checks its deadline.
TICK_SECONDS = 1


class DeletedError(LookupError):
    """The resource is gone."""


def read(conn: Connection, name: str) -> Body:
    body: Body = conn.custom.get_namespaced_custom_object(GROUP, VERSION, conn.namespace, PLURAL, name)
    return body


def follow(conn: Connection, name: str) -> Iterator[tuple[Body, bool]]:
    """Yield (the resource, whether it changed) at every change, and at least every tick."""
    current = read(conn, name)
    yield current, True
    while True:
        changed = False
        watch = kubernetes.watch.Watch()
        try:
            for event in watch.stream(
                conn.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                conn.namespace,
                PLURAL,
                field_selector=f"metadata.name={name}",
                resource_version=current["metadata"]["resourceVersion"],
                timeout_seconds=TICK_SECONDS,
            ):
                if event["type"] == "DELETED":
                    raise DeletedError(f"{conn.namespace}/{name} was deleted")
                if event["type"] in ("ADDED", "MODIFIED"):
                    current, changed = event["object"], True
                    break  # show it now; the next stream resumes from here
        except kubernetes.client.exceptions.ApiException as exc:
            if exc.status != 410:
                raise
            current, changed = read(conn, name), True  # too old to resume: read it again
        finally:
            watch.stop()
        yield current, changed


def pods_of(conn: Connection, name: str) -> list[Body]:
    """The serving pods of a ModelDeployment, as the API server sends them."""
    pods = conn.core.list_namespaced_pod(conn.namespace, label_selector=f"{LABEL_NAME}={name}").items
    serialized: list[Body] = conn.client.sanitize_for_serialization(pods)
    return serialized
