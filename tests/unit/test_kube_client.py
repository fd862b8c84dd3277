"""The API client: every request has a bound (issue #13, defect 4), even a GET on a silent
connection (urllib3 must not repeat a read that timed out), and apply bodies are valid YAML
that reads back the same whatever characters a spec holds."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3
import yaml

from modeldeploy.control import kube
from modeldeploy.control.kinds import BY_KIND

pytestmark = pytest.mark.timeout(30)
READ_TIMEOUT = 0.5


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port whose connections are accepted by the kernel and never answered."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener:
        yield listener.getsockname()[1]


def test_a_get_to_a_silent_server_ends_after_one_read_timeout(
    silent_server: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{silent_server}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    (tmp_path / "kubeconfig").write_text(json.dumps(config))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    monkeypatch.setattr(kube, "REQUEST_TIMEOUT", (READ_TIMEOUT, READ_TIMEOUT))
    client = kube.Kube(kube.load_client_config(connections=4))
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.HTTPError):
        client.list_namespaced(BY_KIND["Pod"], "default")
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
