"""The only module that talks to the API server.

Children are written with server-side apply under one field manager; status is
replaced whole by a JSON patch on the status subresource; Events are core/v1 Events. Every call
is synchronous (apiclient's urllib3 pool) and runs on a reconcile worker thread.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from ..api.names import API_VERSION, CONDITION_MODEL_AVAILABLE, FIELD_MANAGER, KIND, LABEL_MODEL_AVAILABLE
from ..api.times import format_time, to_seconds
from .credentials import load
from .kinds import BY_KIND, Kind
from .transport import ApiClient, ApiError
from .workqueue import RetryLaterError

LOG = logging.getLogger(__name__)
# (connect, read) seconds for every API request.
REQUEST_TIMEOUT = (5.0, 30.0)
# Objects per page of a list: the decoded page is held whole until slimmed.
LIST_PAGE = 250
# A list of the objects' metadata only (PartialObjectMetadataList), served for every kind.
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
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
    def __init__(self, api: ApiClient, watch_api: ApiClient | None = None) -> None:
        self.api = api
        # Watches hold a connection for minutes: given their own pool, they never take the
        # workers'. Everything else, lists included, goes through ``api``, whose answers
        # set the clock the passes read (server_now).
        self.watch_api = watch_api or api
        # Server time minus local time, from the Date header of the API server's answers.
        self._offset: float | None = None
        self._last_date = ""

    def _note_server_time(self, date: str | None) -> None:
        """Follow the API server's clock: canary times in status must not depend on which
        node's clock the operator runs on (a 2-minute skew once rolled back a healthy canary).

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

    def server_now(self) -> str:
        """Now by the API server's clock, as status carries canary times."""
        moment = time.time() + (self._offset or 0.0)
        return format_time(datetime.datetime.fromtimestamp(moment, datetime.UTC))

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
        return BY_KIND[kind].path(namespace, name, subresource)

    def read_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A ConfigMap of the user's (golden requests), or None when it does not exist.
        Read when a check needs it, not watched: it is needed only as new pods start."""
        try:
            result: dict[str, Any] = self._call("GET", self._path("ConfigMap", namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return result

    def apply(self, manifest: dict[str, Any], field_manager: str = FIELD_MANAGER) -> dict[str, Any]:
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

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete with background propagation; False when it was already gone."""
        try:
            self._call(
                "DELETE",
                self._path(kind, namespace, name),
                body={"propagationPolicy": "Background"},
            )
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def list_versions(self, kind: Kind, namespace: str) -> dict[str, str]:
        """name -> resourceVersion of every object of a kind in ``namespace``, from a list of
        their metadata only: what exists and at which version, for about half a full list's
        price, to the API server and to us (docs/benchmarks.md, session 12)."""
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

        ``each`` is applied to every item as its page arrives (the cache's ``slim``), so the
        whole list is never held in full: at N=1000, the relist's pages of whole objects
        were the operator's peak memory, 30 MiB above its peak without relists."""
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

    def watch(self, kind: Kind, namespace: str, version: str, seconds: int) -> Iterator[dict[str, Any]]:
        """The watch events of a kind in ``namespace`` after ``version``, with bookmarks, until
        the server ends the watch after ``seconds``. A read waits at most WATCH_READ_TIMEOUT:
        longer than the server's bookmark interval, so only a silent connection times out."""
        query: list[tuple[str, Any]] = [
            ("watch", "true"),
            ("resourceVersion", version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", seconds),
        ]
        if kind.selector:
            query.append(("labelSelector", kind.selector))
        timeout = (REQUEST_TIMEOUT[0], WATCH_READ_TIMEOUT)
        for line in self.watch_api.stream_lines(kind.path(namespace), query=query, timeout=timeout):
            event = json.loads(line)
            if isinstance(event, dict):
                yield event

    def open_model_gate(self, namespace: str, name: str, message: str) -> dict[str, Any] | None:
        """Mark a live pod's model as available, in one request: the label its Services
        select and the condition its readinessGates wait for.

        Both go through the status subresource: for pods it keeps labels it is given (only
        spec and owner references are reset), and a strategic merge patch merges
        conditions by type, leaving the kubelet's own. The pod as patched; None if it is gone.
        """
        return self._set_model_gate(namespace, name, True, "ModelAvailable", message)

    def close_model_gate(self, namespace: str, name: str, reason: str, message: str) -> dict[str, Any] | None:
        """Take a pod out of service until its model is AVAILABLE again: the label goes
        (Services stop selecting it) and the condition turns False (it stops being Ready).
        The pod as patched; None if it is gone."""
        return self._set_model_gate(namespace, name, False, reason, message)

    def _set_model_gate(
        self, namespace: str, name: str, available: bool, reason: str, message: str
    ) -> dict[str, Any] | None:
        condition = {
            "type": CONDITION_MODEL_AVAILABLE,
            "status": "True" if available else "False",
            "reason": reason,
            "message": message,
            "lastTransitionTime": self.server_now(),
        }
        try:
            patched: dict[str, Any] = self._call(
                "PATCH",
                self._path("Pod", namespace, name, "status"),
                body={
                    # null removes the label in a strategic merge patch
                    "metadata": {"labels": {LABEL_MODEL_AVAILABLE: "true" if available else None}},
                    "status": {"conditions": [condition]},
                },
                content_type="application/strategic-merge-patch+json",
            )
        except ApiError as exc:
            if exc.status != 404:  # a pod that went away needs no gate
                raise
            return None
        return patched

    def patch_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str | None = None
    ) -> dict[str, Any]:
        """Replace the whole status. A merge patch would keep any field the new status
        leaves out (a canary's finished step time, say), so this is a JSON patch.

        Fenced: with ``resource_version`` (the version the status was computed from) the
        patch sets it on the object, which makes the server's update conditional on it:
        if anyone wrote since (a person, or another replica of the operator that leads
        now), the server answers 409 and nothing is written."""
        ops: list[dict[str, Any]] = [{"op": "add", "path": "/status", "value": status}]
        if resource_version:
            ops.insert(0, {"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version})
        result: dict[str, Any] = self._call(
            "PATCH",
            self._path(KIND, namespace, name, "status"),
            body=ops,
            content_type="application/json-patch+json",
        )
        return result

    def read_model_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self._call("GET", self._path(KIND, namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return result

    def raw(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> Any:
        """A request to any path (the leader election's Lease); ``timeout`` bounds both the
        connect and the answer, when it must be shorter than REQUEST_TIMEOUT."""
        return self._call(method, path, body=body, timeout=timeout)

    def post_event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event on the ModelDeployment; failures are logged, never raised."""
        meta = involved["metadata"]
        now = to_seconds(self.server_now())
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{uuid.uuid4().hex[:12]}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": involved.get("apiVersion", API_VERSION),
                "kind": KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
        }
        try:
            self._call("POST", self._path("Event", meta["namespace"]), body=event)
        except ApiError as exc:
            LOG.warning(
                "could not post event %s on %s/%s: %s", reason, meta["namespace"], meta["name"], exc.reason
            )
