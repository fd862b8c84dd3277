"""The children's reflector (kube/reflector.py) against a scripted loopback API server:
a list fills the cache, a broken watch is resumed from the last version seen (no list),
and a 410 Gone is answered with a list that drops what was deleted during the gap."""

from __future__ import annotations

import http.server
import json
import queue
import re
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from modeldeploy.api.names import LABEL_MANAGED_BY, LABEL_NAME, LABEL_SHARD, MANAGED_BY
from modeldeploy.control.kinds import BY_KIND, new_cache
from modeldeploy.kube import client as kube
from modeldeploy.kube.reflector import Reflector
from modeldeploy.kube.transport import Interrupter
from testbed.support.wait import wait_for
from tests.unit.test_kube_client import loopback_kubeconfig

from .objects import pod, pod_status

pytestmark = pytest.mark.timeout(30)
POD = BY_KIND["Pod"]


def owned_pod(name: str, version: str, owner: str) -> dict[str, Any]:
    """A running pod of the ModelDeployment ``owner`` at resourceVersion ``version``."""
    return pod(
        name,
        resource_version=version,
        labels={LABEL_NAME: owner},
        managed_fields=[{"manager": "kwok"}],
        status=pod_status(),
    )


def client_of(folder: Path, port: int) -> kube.Kube:
    return kube.Kube(kube.load_client_config(2, str(loopback_kubeconfig(folder, port))), BY_KIND)


def listing(version: str, *items: dict[str, Any]) -> bytes:
    return json.dumps({"metadata": {"resourceVersion": version}, "items": list(items)}).encode()


def events(*pairs: tuple[str, dict[str, Any]]) -> list[bytes]:
    return [json.dumps({"type": kind, "object": body}).encode() for kind, body in pairs]


class ScriptedApiServer:
    """Answers each request with the next scripted answer and records what was asked.

    An answer is ("list", body) or ("watch", lines, then): a watch writes its lines as
    they would stream, then either ends ("close") or holds the connection open ("hold")
    until the test is over."""

    def __init__(self, script: list[tuple[Any, ...]]) -> None:
        self.script = queue.Queue[tuple[Any, ...]]()
        for answer in script:
            self.script.put(answer)
        self.asked: list[dict[str, str]] = []
        self.over = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                server.asked.append({k: v[0] for k, v in query.items()})
                answer = server.script.get(timeout=10)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if answer[0] == "list":
                    self.send_header("Content-Length", str(len(answer[1])))
                    self.end_headers()
                    self.wfile.write(answer[1])
                    return
                self.end_headers()  # no length: the body runs until the connection closes
                for line in answer[1]:
                    self.wfile.write(line + b"\n")
                    self.wfile.flush()
                if answer[2] == "hold":
                    server.over.wait(20)

            def log_message(self, *args: object) -> None:
                pass

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.over.set()
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def stopping() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def test_a_watch_is_resumed_after_a_break_and_a_gone_version_relists_dropping_ghosts(
    tmp_path: Path, stopping: threading.Event
) -> None:
    a, b = owned_pod("a", "5", "md-a"), owned_pod("b", "6", "md-b")
    c, d = owned_pod("c", "11", "md-c"), owned_pod("d", "19", "md-d")
    server = ScriptedApiServer(
        [
            ("list", listing("10", a, b)),
            # c comes and a goes; then the connection breaks mid-stream.
            ("watch", events(("ADDED", c), ("DELETED", owned_pod("a", "12", "md-a"))), "close"),
            # Resumed from 12, the server no longer has it.
            ("watch", events(("ERROR", {"kind": "Status", "code": 410, "reason": "Expired"})), "close"),
            # During the gap b was deleted (no event will ever say so) and d made.
            ("list", listing("20", c, d)),
            ("watch", [], "hold"),
        ]
    )
    try:
        client = client_of(tmp_path, server.http.server_port)
        cache = new_cache()
        seen: list[tuple[str, str]] = []
        relisted: list[set[str]] = []

        def sink(kind: str, body: dict[str, Any]) -> None:  # as the operator's does
            seen.append((kind, body["metadata"]["name"]))
            if kind == "DELETED":
                cache.remove("Pod", "ml", body["metadata"]["name"])
            else:
                cache.upsert("Pod", body)

        reflector = Reflector(client, cache, POD, "ml", sink, relisted.append, stopping).start()
        assert reflector.synced.wait(10), "the first list filled the cache"
        wait_for(lambda: len(server.asked) == 5, 10, what="list, watch, resumed watch, list, watch")
        wait_for(lambda: reflector.lists == 2, 10, what="the second list in the cache")
    finally:
        server.stop()

    watch_versions = [q.get("resourceVersion") for q in server.asked if q.get("watch") == "true"]
    assert watch_versions == ["10", "12", "20"]  # resumed from the last version seen, then from the list's
    lists = [q for q in server.asked if "watch" not in q]
    assert len(lists) == 2  # the break needed no list; the 410 did
    assert all(q["labelSelector"] == POD.selector for q in server.asked)
    assert all(q["allowWatchBookmarks"] == "true" for q in server.asked if "watch" in q)
    assert seen == [("ADDED", "c"), ("DELETED", "a")]
    # The list replaced what the cache held: the ghost b is gone, d is there, slimmed.
    assert {p["metadata"]["name"] for p in cache.labelled("Pod", "ml", "md-b")} == set()
    assert cache.get("Pod", "ml", "d") is not None
    assert "managedFields" not in cache.get("Pod", "ml", "d")["metadata"]  # type: ignore[index]
    assert cache.get("Pod", "ml", "b") is None
    # The owners whose children changed during the gap get a pass; the first list asks none.
    assert relisted == [{"md-b", "md-d"}]


def test_a_kind_the_server_does_not_serve_counts_as_listed_and_empty(
    tmp_path: Path, stopping: threading.Event
) -> None:
    """No Gateway API installed: the HTTPRoute reflector must not hold up passes."""

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"kind":"Status","code":404}'
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = client_of(tmp_path, server.server_port)
        reflector = Reflector(
            client, new_cache(), BY_KIND["HTTPRoute"], "ml", lambda *_: None, lambda _: None, stopping
        ).start()
        assert reflector.synced.wait(10)
    finally:
        server.shutdown()
        server.server_close()


def test_a_pass_waits_for_its_namespace_s_first_lists_then_is_retried_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pass on a namespace whose children are not listed yet would report them missing:
    it waits for the lists, and gives the key back when they do not come in time."""
    from modeldeploy.control.watches import EventRouter, NamespaceWatches
    from modeldeploy.kube.workqueue import RetryLaterError, WorkQueue

    listed = SimpleNamespace(kind=POD, synced=threading.Event())  # what the wait reads
    unlisted = SimpleNamespace(kind=POD, synced=threading.Event())
    listed.synced.set()
    cache = new_cache()
    router = EventRouter(cache, WorkQueue(), lambda namespace, name: None)
    watches = NamespaceWatches(None, cache, router, threading.Event())  # type: ignore[arg-type]
    monkeypatch.setattr(watches, "watch", lambda namespace: [listed])
    watches.fill("ml", wait_seconds=0.2)  # listed: the pass goes on
    monkeypatch.setattr(watches, "watch", lambda namespace: [listed, unlisted])
    with pytest.raises(RetryLaterError, match="pods of namespace ml not listed yet"):
        watches.fill("ml", wait_seconds=0.2)


class HoldingApiServer:
    """Answers every list with the pods ``pods_listed`` gives (those of ``items`` in the
    list's namespace) and holds every watch open until it stops, as an idle namespace's
    watches stay open."""

    def __init__(self, items: dict[str, list[dict[str, Any]]]) -> None:
        self.items = items
        self.ended = threading.Event()
        self.watching = 0  # watches the server holds open now
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urllib.parse.urlsplit(self.path)
                query = {k: v[0] for k, v in urllib.parse.parse_qs(parts.query).items()}
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if query.get("watch") == "true":
                    self.end_headers()  # no length: the watch runs until the connection closes
                    server.watching += 1
                    server.ended.wait(20)
                    return
                namespace = parts.path.split("/namespaces/")[1].split("/")[0]
                is_pods = parts.path.endswith("/pods")
                chosen = server.pods_listed(namespace, query.get("labelSelector", "")) if is_pods else []
                body = listing("1", *chosen)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def pods_listed(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self.items.get(namespace, [])

    def stop(self) -> None:
        self.ended.set()
        self.http.shutdown()
        self.http.server_close()


def watch_threads() -> int:
    """The reflector threads of this test's namespaces (ci-N)."""
    return sum(1 for t in threading.enumerate() if t.name.startswith("watch-") and "-ci-" in t.name)


def test_a_namespace_s_reflectors_stop_with_its_last_model_deployment_and_start_again(
    tmp_path: Path, stopping: threading.Event
) -> None:
    """Short-lived namespaces must not leave their watch threads behind: once a namespace
    has no ModelDeployment its reflectors stop, its children leave the cache, and the
    thread count is back where it was; a new ModelDeployment there starts them again."""
    from modeldeploy.api.names import KIND
    from modeldeploy.control.kinds import CHILD_WATCHES
    from modeldeploy.control.watches import EventRouter, NamespaceWatches
    from modeldeploy.kube.workqueue import WorkQueue

    from .objects import model_deployment_body

    namespaces = [f"ci-{i}" for i in range(20)]
    listed = owned_pod("a", "5", "md-a")
    listed["metadata"]["namespace"] = "ci-0"
    server = HoldingApiServer({"ci-0": [listed]})
    started: list[NamespaceWatches] = []
    try:
        client = kube.Kube(
            kube.load_client_config(8, str(loopback_kubeconfig(tmp_path, server.http.server_address[1]))),
            BY_KIND,
        )
        cache = new_cache()
        watches = NamespaceWatches(client, cache, EventRouter(cache, WorkQueue(), lambda *_: None), stopping)
        started.append(watches)
        for namespace in namespaces:
            watches.fill(namespace, wait_seconds=10)
        assert watch_threads() == len(namespaces) * len(CHILD_WATCHES)
        assert cache.get("Pod", "ci-0", "a") is not None
        held = model_deployment_body("md-a", namespace="ci-1")
        cache.upsert(KIND, held)
        assert not watches.unwatch_if_empty("ci-1"), "a namespace with a ModelDeployment stays watched"
        cache.remove(KIND, "ci-1", "md-a")
        assert all(watches.unwatch_if_empty(namespace) for namespace in namespaces)
        assert watches.namespaces() == []
        assert cache.get("Pod", "ci-0", "a") is None, "a namespace no longer watched leaves the cache"
        # Their watches stay open on the server's side (a quiet namespace): stopping the
        # reflectors ends them, not the server.
        wait_for(lambda: watch_threads() == 0, 10, what="the reflectors' threads ended")
        assert not server.ended.is_set()
        watches.fill("ci-0", wait_seconds=10)
        assert watch_threads() == len(CHILD_WATCHES)
        assert cache.get("Pod", "ci-0", "a") is not None
    finally:
        for watches in started:
            watches.stop()  # the reflectors started last: they outlive the test's ``stopping``
        server.stop()


def selects(selector: str, labels: dict[str, str]) -> bool:
    """The API server's label selection, for the forms the operator sends: ``k=v``, ``!k``
    and ``k in (a,b)``."""
    for term in filter(None, re.split(r",(?![^(]*\))", selector)):
        if term.startswith("!"):
            ok = term[1:] not in labels
        elif " in (" in term:
            key, values = term.split(" in (")
            ok = labels.get(key) in values.rstrip(")").split(",")
        else:
            key, value = term.split("=")
            ok = labels.get(key) == value
        if not ok:
            return False
    return True


class SelectingApiServer(HoldingApiServer):
    """Answers every pod list with the pods its label selector selects, and holds every
    watch open until the test ends; records each list's selector."""

    def __init__(self, pods: list[dict[str, Any]]) -> None:
        self.pods = pods
        self.selectors: list[str] = []
        super().__init__({})

    def pods_listed(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        self.selectors.append(selector)
        return [p for p in self.pods if selects(selector, p["metadata"]["labels"])]


def sharded_pod(name: str, shard: int | None) -> dict[str, Any]:
    body = owned_pod(name, "5", f"md-{name}")
    body["metadata"]["labels"][LABEL_MANAGED_BY] = MANAGED_BY
    if shard is not None:
        body["metadata"]["labels"][LABEL_SHARD] = str(shard)
    return body


@contextmanager
def sharded_watches(
    pods: list[dict[str, Any]], shard_count: int, tmp_path: Path, stopping: threading.Event
) -> Iterator[tuple[Any, Any, SelectingApiServer]]:
    """A replica's children watches over ``shard_count`` shards against a server holding
    ``pods``: (the watches, their cache, the server); all stopped at the end."""
    from modeldeploy.control.watches import EventRouter, NamespaceWatches
    from modeldeploy.kube.workqueue import WorkQueue

    server = SelectingApiServer(pods)
    watches = None
    try:
        client = kube.Kube(
            kube.load_client_config(8, str(loopback_kubeconfig(tmp_path, server.http.server_address[1]))),
            BY_KIND,
        )
        cache = new_cache()
        watches = NamespaceWatches(
            client, cache, EventRouter(cache, WorkQueue(), lambda *_: None), stopping, shard_count
        )
        yield watches, cache, server
    finally:
        if watches is not None:
            watches.stop()  # the reflectors started last: they outlive the test's ``stopping``
        server.stop()


def pods_cached(cache: Any) -> set[str]:
    return {name for kind, _, name in list(cache._objects) if kind == "Pod"}


def test_the_children_watched_follow_the_held_shards_and_unlabelled_ones_are_seen_until_gone(
    tmp_path: Path, stopping: threading.Event
) -> None:
    """Each replica lists and watches only its shards' children; when its shards change, its
    cache holds exactly the new shards' children once listed. Shards taken beside those held
    are listed alone; letting one go lists the held ones again and drops its children.
    Children an install of one shard made (no label) are listed apart; that watch ends once
    none is left."""
    pods = [sharded_pod("zero", 0), sharded_pod("one", 1), sharded_pod("two", 2), sharded_pod("old", None)]
    selected = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_SHARD} in "
    legacy = f"{LABEL_MANAGED_BY}={MANAGED_BY},!{LABEL_SHARD}"
    with sharded_watches(pods, 4, tmp_path, stopping) as (watches, cache, server):
        watches.fill("ml", wait_seconds=10)
        assert pods_cached(cache) == {"old"}, "no shard held yet: only the unlabelled children"
        assert watches.reselect(frozenset({0}))
        watches.fill("ml", wait_seconds=10)
        assert pods_cached(cache) == {"zero", "old"}
        assert {f"{selected}(0)", legacy} <= set(server.selectors)
        # A shard taken beside: only its children are listed; the running watches go on.
        server.selectors.clear()
        assert watches.reselect(frozenset({0, 1}))
        assert not watches.reselect(frozenset({0, 1})), "the same shards: nothing restarts"
        watches.fill("ml", wait_seconds=10)
        assert pods_cached(cache) == {"zero", "one", "old"}
        assert server.selectors == [f"{selected}(1)"]
        # A shard let go: the held ones listed again, and its children leave the cache.
        server.selectors.clear()
        assert watches.reselect(frozenset({1}))
        watches.fill("ml", wait_seconds=10)
        assert pods_cached(cache) == {"one", "old"}
        assert sorted(server.selectors) == sorted([f"{selected}(1)", legacy])
        assert watches.reselect(frozenset({0, 1, 2, 3}))  # every shard held: every child
        watches.fill("ml", wait_seconds=10)
        assert pods_cached(cache) == {"zero", "one", "two", "old"}


def test_shards_taken_beside_again_and_again_are_watched_as_one_set_past_a_few_groups(
    tmp_path: Path, stopping: threading.Event
) -> None:
    from modeldeploy.control.watches import MAX_WATCH_GROUPS

    pods = [sharded_pod(f"p{shard}", shard) for shard in range(8)]
    selected = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_SHARD} in "
    with sharded_watches(pods, 8, tmp_path, stopping) as (watches, cache, server):
        watches.reselect(frozenset({0}))
        watches.fill("ml", wait_seconds=10)
        for last in range(1, MAX_WATCH_GROUPS):  # each taken beside: listed alone
            server.selectors.clear()
            watches.reselect(frozenset(range(last + 1)))
            watches.fill("ml", wait_seconds=10)
            assert server.selectors == [f"{selected}({last})"]
        server.selectors.clear()
        watches.reselect(frozenset(range(MAX_WATCH_GROUPS + 1)))
        watches.fill("ml", wait_seconds=10)
        held = ",".join(str(s) for s in range(MAX_WATCH_GROUPS + 1))
        assert f"{selected}({held})" in server.selectors, server.selectors
        assert pods_cached(cache) == {f"p{s}" for s in range(MAX_WATCH_GROUPS + 1)}


def test_the_watch_of_unlabelled_children_ends_once_none_is_left(
    tmp_path: Path, stopping: threading.Event
) -> None:
    from modeldeploy.control.shard_select import UNLABELLED, combined, unlabelled

    old = sharded_pod("old", None)
    server = ScriptedApiServer(
        [
            ("list", listing("10", old)),
            # The operator labelled it: it leaves this watch's selector, a deletion to it.
            (
                "watch",
                events(("DELETED", {**old, "metadata": {**old["metadata"], "resourceVersion": "12"}})),
                "close",
            ),
        ]
    )
    try:
        cache = new_cache()

        def sink(kind: str, body: dict[str, Any]) -> None:
            if kind == "DELETED":
                cache.remove("Pod", "ml", body["metadata"]["name"], unlabelled)

        legacy = replace(POD, selector=combined(POD.selector, UNLABELLED))
        reflector = Reflector(
            client_of(tmp_path, server.http.server_port),
            cache,
            legacy,
            "ml",
            sink,
            lambda _: None,
            stopping,
            unlabelled,
            until_empty=True,
        )
        reflector.start()
        assert reflector.synced.wait(10)
        wait_for(lambda: not reflector._thread.is_alive(), 10, what="the reflector ended")
        assert cache.get("Pod", "ml", "old") is None
        assert len(server.asked) == 2, "no list or watch after the last one went"
    finally:
        server.stop()


def test_an_interrupted_watch_ends_at_once_whether_it_was_waiting_or_not_yet_asked(tmp_path: Path) -> None:
    """The server holds both watches open (a quiet namespace); each ends only because it
    was interrupted: one while its read waits, one before its request went out."""
    server = HoldingApiServer({})
    try:
        client = client_of(tmp_path, server.http.server_address[1])
        waiting, early = Interrupter(), Interrupter()
        seen: list[list[dict[str, Any]]] = []
        reader = threading.Thread(
            target=lambda: seen.append(list(client.watch(POD, "ns", "1", 300, waiting)))
        )
        reader.start()
        wait_for(lambda: server.watching, 10, what="the watch held by the server")
        waiting.interrupt()
        reader.join(10)
        assert not reader.is_alive()
        assert seen == [[]]
        early.interrupt()
        assert list(client.watch(POD, "ns", "1", 300, early)) == []
        assert not server.ended.is_set(), "the server ended no watch itself"
    finally:
        server.stop()


def test_a_namespace_busy_with_its_cache_holds_up_no_other_namespace_s_events(
    tmp_path: Path, stopping: threading.Event
) -> None:
    """While one namespace's reflectors hold its guard (a long list going into the cache,
    its reflectors being replaced), another namespace's events still land."""
    from modeldeploy.control.watches import EventRouter, NamespaceWatches
    from modeldeploy.kube.workqueue import WorkQueue

    server = HoldingApiServer({})
    cache = new_cache()
    client = client_of(tmp_path, server.http.server_address[1])
    watches = NamespaceWatches(client, cache, EventRouter(cache, WorkQueue(), lambda *_: None), stopping)
    try:
        busy, other = watches.watch("ci-busy"), watches.watch("ci-other")
        arrived = owned_pod("a", "7", "md-a")
        arrived["metadata"]["namespace"] = "ci-other"
        pods = next(r for r in other if r.kind.kind == "Pod")
        with busy[0].guard:
            delivered = threading.Thread(target=pods.on_event, args=("ADDED", arrived), daemon=True)
            delivered.start()
            delivered.join(10)
            assert not delivered.is_alive(), "an event of another namespace waited for the busy one"
        assert cache.get("Pod", "ci-other", "a") is not None
    finally:
        watches.stop()
        server.stop()
