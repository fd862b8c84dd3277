"""The API client: get, apply (server-side, under the caller's field manager), patch,
create, delete, paged lists and watches, on paths resolved from a kind table it is given.

Every call is synchronous (transport's urllib3 pool) and bounded by a timeout; it follows
the API server's clock from the Date header of its answers.
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .credentials import load
from .kinds import Kind
from .transport import ApiClient, ApiError, Interrupter
from .workqueue import RetryLaterError

LOG = logging.getLogger(__name__)
# (connect, read) seconds for every API request.
REQUEST_TIMEOUT = (5.0, 30.0)
# Objects per page of a list: the decoded page is held whole until trimmed.
LIST_PAGE = 250
# A list of the objects' metadata only (PartialObjectMetadataList), served for every kind.
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
# Seconds a watch may stay silent before it is dropped and resumed: the API server sends a
# bookmark about every minute, so only a dead connection stays silent this long.
WATCH_READ_TIMEOUT = 120.0


# Characters JSON leaves raw that YAML (an apply body is YAML) refuses or reads as a line
# break inside a string: DEL, the C1 controls (NEL among them), the line and paragraph
# separators, the two BMP noncharacters. All are inside JSON strings, where YAML reads \u.
YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufffe\uffff]")


def yaml_safe_json(body: Any) -> str:
    """JSON that is also valid YAML. The client's json.dumps writes characters beyond the
    Basic Multilingual Plane as surrogate pairs (valid JSON, not YAML) and DEL raw: the
    server refused such manifests (an emoji or a DEL in an arg) with 400."""
    text = json.dumps(body, ensure_ascii=False)
    return YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def load_client_config(connections: int, kubeconfig: str | None = None) -> ApiClient:
    """In-cluster credentials when running in a pod, else the KUBECONFIG file (see
    credentials.load). ``connections``: one kept-alive connection per worker thread."""
    return ApiClient(load(kubeconfig), connections=connections)


class Kube:
    def __init__(self, api: ApiClient, kinds: Mapping[str, Kind], watch_api: ApiClient | None = None) -> None:
        self.api = api
        # Kind name -> where it lives: the paths of requests that name a kind.
        self.kinds = kinds
        # Watches hold a connection for minutes: given their own pool, they never take the
        # workers'. Everything else, lists included, goes through ``api``, whose answers
        # set the clock callers read (server_time).
        self.watch_api = watch_api or api
        # Server time minus local time, from the Date header of the API server's answers.
        self._offset: float | None = None
        self._last_date = ""

    def _note_server_time(self, date: str | None) -> None:
        """Follow the API server's clock: times written to objects must not depend on which
        node's clock the caller runs on (durations computed across nodes would be skewed).

        Date has whole seconds, so only a difference beyond 1.5 s is a skew; below that the
        local clock is kept (it has milliseconds, and steps must not jitter).
        """
        if not date or date == self._last_date:
            return
        self._last_date = date
        try:
            server = email.utils.parsedate_to_datetime(date).timestamp() + 0.5
        except (TypeError, ValueError):
            return
        offset = server - time.time()
        skew = offset if abs(offset) > 1.5 else 0.0
        if self._offset is None or abs(skew - self._offset) > 1.5:
            if skew or self._offset:
                LOG.info("following the API server's clock: %+.1fs from this node's", skew)
            self._offset = skew

    def server_time(self) -> float:
        """Now by the API server's clock, in seconds since the epoch."""
        return time.time() + (self._offset or 0.0)

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, Any]] | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
        accept: str = "application/json",
    ) -> Any:
        encoded = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        try:
            response = self.api.request(
                method,
                path,
                query=query or [],
                body=encoded,
                content_type=content_type,
                # A request never waits longer than this, so a stalled API server (or a
                # connection that silently drops) cannot hold a worker for good.
                timeout=(timeout, timeout) if timeout is not None else REQUEST_TIMEOUT,
                accept=accept,
            )
        except ApiError as exc:
            if exc.status == 429:  # throttled: come back when the server says
                retry_after = exc.headers.get("Retry-After", "1")
                seconds = float(retry_after) if str(retry_after).isdigit() else 1.0
                raise RetryLaterError(f"API server throttled {method} {path}", seconds) from None
            raise
        self._note_server_time(response.headers.get("Date"))
        return json.loads(response.data) if response.data else None

    def _path(
        self, kind: str, namespace: str, name: str | None = None, subresource: str | None = None
    ) -> str:
        return self.kinds[kind].path(namespace, name, subresource)

    def get(
        self, kind: str, namespace: str, name: str, accept: str = "application/json"
    ) -> dict[str, Any] | None:
        """One object (``accept=METADATA``: its metadata alone), or None when it does not exist."""
        try:
            result: dict[str, Any] = self._call("GET", self._path(kind, namespace, name), accept=accept)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return result

    def version(self, kind: str, namespace: str, name: str) -> str | None:
        """An object's resourceVersion, read with its metadata alone; None when it does not
        exist. Any change to the object, by anyone, moves it."""
        result = self.get(kind, namespace, name, accept=METADATA)
        return None if result is None else str((result.get("metadata") or {}).get("resourceVersion") or "")

    def apply(self, manifest: dict[str, Any], field_manager: str) -> dict[str, Any]:
        """Server-side apply, forced: ``field_manager`` takes every field the manifest sets."""
        meta = manifest["metadata"]
        path = self._path(manifest["kind"], meta["namespace"], meta["name"])
        # The charset parameter is for readers of the request; the server ignores it.
        # See yaml_safe_json for why the body is not plain json.dumps.
        result: dict[str, Any] = self._call(
            "PATCH",
            path,
            body=yaml_safe_json(manifest).encode(),
            query=[("fieldManager", field_manager), ("force", "true")],
            content_type="application/apply-patch+yaml; charset=utf-8",
        )
        return result

    def delete(
        self, kind: str, namespace: str, name: str, preconditions: Mapping[str, str] | None = None
    ) -> bool:
        """Delete with background propagation; False when it was already gone, or when
        ``preconditions`` (uid, resourceVersion) no longer hold: the name now names another
        object, or the one meant changed since it was read."""
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if preconditions:
            body["preconditions"] = dict(preconditions)
        try:
            self._call("DELETE", self._path(kind, namespace, name), body=body)
        except ApiError as exc:
            if exc.status in (404, 409):  # 409: a precondition failed
                return False
            raise
        return True

    def list_versions(self, kind: Kind, namespace: str) -> dict[str, str]:
        """name -> resourceVersion of every object of a kind in ``namespace``, from a list of
        their metadata only: what exists and at which version, for much less than a list of
        whole objects costs the API server and us."""
        items = self.list_with_version(kind, namespace, accept=METADATA_LIST)[0]
        return {item["metadata"]["name"]: item["metadata"].get("resourceVersion", "") for item in items}

    def list_with_version(
        self,
        kind: Kind,
        namespace: str,
        each: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        accept: str = "application/json",
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Every object of a kind in ``namespace`` (by its watch selector), and the list's
        resourceVersion to watch from; [] and None when the kind is not served (e.g. no
        Gateway API).

        ``each`` is applied to every item as its page arrives (the cache's ``trim``), so the
        whole objects of a large list are never all held at once."""
        path = kind.path(namespace)
        label_selector = kind.selector
        items: list[dict[str, Any]] = []
        token = ""
        version = ""
        while True:
            query = [("limit", LIST_PAGE)] + ([("labelSelector", label_selector)] if label_selector else [])
            if token:
                query.append(("continue", token))
            try:
                page = self._call("GET", path, query=query, accept=accept)
            except ApiError as exc:
                if exc.status == 404:
                    return [], None
                raise
            metadata = page.get("metadata") or {}
            token = metadata.get("continue") or ""
            # Every page of one list is the same snapshot: the first page's version is its.
            version = version or metadata.get("resourceVersion") or ""
            page_items = page.get("items") or []
            items += [each(item) for item in page_items] if each is not None else page_items
            del page, page_items  # this page's whole objects go before the next one comes
            if not token:
                return items, version

    def watch(
        self,
        kind: Kind,
        namespace: str,
        version: str,
        seconds: int,
        interrupter: Interrupter | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The watch events of a kind in ``namespace`` after ``version``, with bookmarks, until
        the server ends the watch after ``seconds`` (or ``interrupter`` does). A read waits at
        most WATCH_READ_TIMEOUT: longer than the server's bookmark interval, so only a
        silent connection times out."""
        query: list[tuple[str, Any]] = [
            ("watch", "true"),
            ("resourceVersion", version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", seconds),
        ]
        if kind.selector:
            query.append(("labelSelector", kind.selector))
        timeout = (REQUEST_TIMEOUT[0], WATCH_READ_TIMEOUT)
        lines = self.watch_api.stream_lines(
            kind.path(namespace), query=query, timeout=timeout, interrupter=interrupter
        )
        for line in lines:
            event = json.loads(line)
            if isinstance(event, dict):
                yield event

    def patch(
        self,
        kind: str,
        namespace: str,
        name: str,
        body: Any,
        *,
        content_type: str,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """A patch of ``content_type`` (merge, strategic merge or JSON patch); the object as
        patched."""
        path = self._path(kind, namespace, name, subresource)
        result: dict[str, Any] = self._call("PATCH", path, body=body, content_type=content_type)
        return result

    def create(self, kind: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", self._path(kind, namespace), body=body)
        return result

    def raw(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> Any:
        """A request to any path (the leader election's Lease); ``timeout`` bounds both the
        connect and the answer, when it must be shorter than REQUEST_TIMEOUT."""
        return self._call(method, path, body=body, timeout=timeout)
