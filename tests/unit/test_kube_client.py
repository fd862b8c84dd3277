"""The API client: every request has a bound, even a GET on a silent
connection (urllib3 must not repeat a read that timed out), and apply bodies are valid YAML
that reads back the same whatever characters a spec holds."""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml

from modeldeploy.control.kinds import BY_KIND, slim
from modeldeploy.kube import client as kube

pytestmark = pytest.mark.timeout(30)
READ_TIMEOUT = 0.5


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port whose connections are accepted by the kernel and never answered."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener:
        yield listener.getsockname()[1]


def loopback_kubeconfig(folder: Path, port: int) -> Path:
    """A kubeconfig for a plain-HTTP server on 127.0.0.1:``port``."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    path = folder / "kubeconfig"
    path.write_text(json.dumps(config))
    return path


def test_a_get_to_a_silent_server_ends_after_one_read_timeout(
    silent_server: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(loopback_kubeconfig(tmp_path, silent_server)))
    monkeypatch.setattr(kube, "REQUEST_TIMEOUT", (READ_TIMEOUT, READ_TIMEOUT))
    client = kube.Kube(kube.load_client_config(connections=4), BY_KIND)
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.HTTPError):
        client.list_with_version(BY_KIND["Pod"], "default")
    elapsed = time.monotonic() - started
    # urllib3's default would read four times (2 s here); one read is the bound.
    assert READ_TIMEOUT <= elapsed < 2 * READ_TIMEOUT, elapsed


@pytest.mark.parametrize(
    "text",
    ["emoji 🙂 and 𐀀", "DEL \x7f", "C1 \x80\x9f", "NEL \x85", "LS \u2028 PS \u2029", "nonchar \ufffe\uffff"],
)
def test_an_apply_body_is_yaml_that_reads_back_the_same(text: str) -> None:
    body = {"spec": {"args": [text], "n": 1}}
    assert yaml.safe_load(kube.yaml_safe_json(body)) == body
    assert json.loads(kube.yaml_safe_json(body)) == body


@contextlib.contextmanager
def json_server(answer: Callable[[http.server.BaseHTTPRequestHandler], dict[str, Any]]) -> Iterator[int]:
    """A plain-HTTP server on 127.0.0.1 answering every GET and DELETE with ``answer(request)``
    as JSON (with its ``code`` as the status, if it has one); its port."""

    class Answering(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(answer(self)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_DELETE(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.sent = json.loads(self.rfile.read(length) or b"null")  # type: ignore[attr-defined]
            answer_body = answer(self)
            self.send_response(int(answer_body.get("code", 200)))
            body = json.dumps(answer_body).encode()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answering)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_port
    finally:
        server.shutdown()


def test_a_list_comes_in_pages_and_each_item_is_slimmed_as_its_page_arrives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relist's pages: limit and continue are sent, and ``each`` sees every item of
    every page (the cache's slim, so whole objects are never held for the whole list)."""
    asked: list[dict[str, list[str]]] = []
    pages: dict[str, dict[str, Any]] = {
        "": {
            "metadata": {"continue": "page-2"},
            "items": [{"metadata": {"name": "a", "managedFields": [{"manager": "kwok"}]}}],
        },
        "page-2": {
            "metadata": {},
            "items": [{"metadata": {"name": "b", "managedFields": [{"manager": "kwok"}]}}],
        },
    }

    def page(request: http.server.BaseHTTPRequestHandler) -> dict[str, Any]:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
        asked.append(query)
        return pages[query.get("continue", [""])[0]]

    seen: list[str] = []

    def each(item: dict[str, Any]) -> dict[str, Any]:
        seen.append(item["metadata"]["name"])
        return slim("Pod", item)

    with json_server(page) as port:
        client = kube.Kube(kube.load_client_config(2, str(loopback_kubeconfig(tmp_path, port))), BY_KIND)
        items, _ = client.list_with_version(BY_KIND["Pod"], "ml", each=each)
    assert [i["metadata"] for i in items] == [{"name": "a"}, {"name": "b"}]
    assert seen == ["a", "b"]
    assert [q.get("continue") for q in asked] == [None, ["page-2"]]
    assert all(q["limit"] == [str(kube.LIST_PAGE)] for q in asked)
    assert all(q["labelSelector"] == [BY_KIND["Pod"].selector] for q in asked)


def test_list_versions_asks_for_metadata_only(tmp_path: Path) -> None:
    """The ModelDeployments' relist lists names and versions: the API server is asked for
    PartialObjectMetadata, not whole objects."""
    accepted: list[str] = []

    def page(request: http.server.BaseHTTPRequestHandler) -> dict[str, Any]:
        accepted.append(request.headers["Accept"])
        return {"metadata": {}, "items": [{"metadata": {"name": "mnist", "resourceVersion": "42"}}]}

    with json_server(page) as port:
        client = kube.Kube(kube.load_client_config(2, str(loopback_kubeconfig(tmp_path, port))), BY_KIND)
        versions = client.list_versions(BY_KIND["ModelDeployment"], "ml")
    assert versions == {"mnist": "42"}
    assert accepted == ["application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"]


def test_a_delete_names_the_object_meant_and_a_failed_precondition_deletes_nothing(tmp_path: Path) -> None:
    """A child is deleted by uid, not by name alone: a namesake made since (by someone
    else) is never deleted, and the server's 409 for it is no error."""
    sent: list[Any] = []

    def conflict(request: http.server.BaseHTTPRequestHandler) -> dict[str, Any]:
        sent.append(request.sent)  # type: ignore[attr-defined]
        return {"kind": "Status", "code": 409, "reason": "Conflict", "message": "Precondition failed: UID"}

    with json_server(conflict) as port:
        client = kube.Kube(kube.load_client_config(2, str(loopback_kubeconfig(tmp_path, port))), BY_KIND)
        deleted = client.delete("Service", "ml", "fraud-v2", {"uid": "u-1", "resourceVersion": "7"})
    assert deleted is False
    assert sent == [
        {"propagationPolicy": "Background", "preconditions": {"uid": "u-1", "resourceVersion": "7"}}
    ]
