"""The operator's own credentials (kube/credentials.py, kube/transport.py) against the real
API server, which tells who it took each request for (a SelfSubjectReview): a client
certificate signed by the cluster's CA, an exec plugin, a token file that changed since
it was read (the 401 path), and kopf's login from the same loader."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import kopf
import pytest
import yaml

from modeldeploy.control import handlers
from modeldeploy.kube import credentials
from modeldeploy.kube.client import Kube, load_client_config
from modeldeploy.kube.transport import ApiError
from testbed.cluster.localcluster import ADMIN_TOKEN_USER

from .conftest import Cluster

pytestmark = pytest.mark.timeout(60)
REVIEW = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


def who(kubeconfig: Path) -> dict[str, Any]:
    kube = Kube(load_client_config(2, str(kubeconfig)), {})
    review = kube.raw("POST", REVIEW, {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    user: dict[str, Any] = review["status"]["userInfo"]
    return user


def skip_unless_local(cluster: Cluster) -> Path:
    """The suite's own PKI folder; on an external cluster the test skips (no CA key, no tokens)."""
    if cluster.local is None:
        pytest.skip("uses the suite's own cluster CA and tokens")
    return cluster.local.root / "pki"


def base_config(cluster: Cluster, user: dict[str, Any], ca_inline: bool = False) -> dict[str, Any]:
    """The suite's kubeconfig with its user replaced."""
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    entry = config["clusters"][0]["cluster"]
    if ca_inline:
        entry["certificate-authority-data"] = base64.b64encode(
            Path(entry.pop("certificate-authority")).read_bytes()
        ).decode()
    config["users"] = [{"name": "u", "user": user}]
    config["contexts"] = [{"name": "c", "context": {"cluster": config["clusters"][0]["name"], "user": "u"}}]
    config["current-context"] = "c"
    return dict(config)


def token_of(kubeconfig: Path) -> str:
    return str(yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"])


def test_a_client_certificate_signed_by_the_cluster_ca_authenticates(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = skip_unless_local(cluster)
    key, csr, crt = tmp_path / "c.key", tmp_path / "c.csr", tmp_path / "c.crt"
    request = ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/O=system:masters/CN=cert-user"]
    subprocess.run(["openssl", *request, "-keyout", key, "-out", csr], check=True, capture_output=True)
    signing: list[str | Path] = [
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        pki / "ca.crt",
        "-CAkey",
        pki / "ca.key",
        "-CAcreateserial",
    ]
    subprocess.run(["openssl", *signing, "-days", "1", "-out", crt], check=True, capture_output=True)
    inline = {
        "client-certificate-data": base64.b64encode(crt.read_bytes()).decode(),
        "client-key-data": base64.b64encode(key.read_bytes()).decode(),
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(base_config(cluster, inline, ca_inline=True)))
    user = who(path)
    assert user["username"] == "cert-user"
    assert "system:masters" in user["groups"]
    # kopf logs in from the same loader: the same server, CA and certificate.
    monkeypatch.setenv("KUBECONFIG", str(path))
    # kopf's decorator types the handler as an activity with kopf's own arguments; kopf
    # calls it with those, which the handler takes as ``**_``.
    login: Callable[[], kopf.ConnectionInfo] = cast(Any, handlers.login)
    info = login()
    assert info.server == yaml.safe_load(cluster.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    assert info.token is None
    assert info.certificate_data == crt.read_bytes()
    info.as_ssl_context()  # kopf's own TLS set-up takes the certificate and key

    # Relative files: read beside the kubeconfig that names them, as kubectl does.
    by_file = {"client-certificate": "c.crt", "client-key": "c.key"}
    (tmp_path / "files.yaml").write_text(yaml.safe_dump(base_config(cluster, by_file)))
    assert who(tmp_path / "files.yaml")["username"] == "cert-user"


def test_an_exec_plugin_is_run_and_run_again_when_its_credential_expires(
    cluster: Cluster, tmp_path: Path
) -> None:
    skip_unless_local(cluster)
    runs = tmp_path / "runs"
    plugin = tmp_path / "plugin.py"
    # Prints an ExecCredential; the first one has already expired, the second lasts an hour.
    plugin.write_text(
        "import datetime, json, os, sys\n"
        f"runs = {str(runs)!r}\n"
        "count = (len(open(runs).read()) if os.path.exists(runs) else 0) + 1\n"
        "open(runs, 'a').write('x')\n"
        "offset = -30 if count == 1 else 3600\n"
        "expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset)\n"
        "assert json.loads(os.environ['KUBERNETES_EXEC_INFO'])['kind'] == 'ExecCredential'\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', 'kind': 'ExecCredential',\n"
        "  'status': {'token': os.environ['TOKEN'],\n"
        "             'expirationTimestamp': expiry.strftime('%Y-%m-%dT%H:%M:%SZ')}}))\n"
    )
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": sys.executable,
            "args": [str(plugin)],
            "env": [{"name": "TOKEN", "value": token_of(cluster.kubeconfig)}],
            "interactiveMode": "Never",
        }
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(base_config(cluster, user)))
    found = credentials.load(path)
    first = found.identity()
    second = found.identity()  # the first had expired: asked again
    assert runs.read_text() == "xx"
    assert first.expires is not None
    assert second.expires is not None
    assert second.expires > first.expires
    assert found.identity() is second, "a valid credential is not asked for again"
    assert runs.read_text() == "xx"
    assert who(path)["username"] == ADMIN_TOKEN_USER


def test_a_token_file_that_changed_is_read_again_after_a_401(cluster: Cluster, tmp_path: Path) -> None:
    skip_unless_local(cluster)
    token_file = tmp_path / "token"
    token_file.write_text("not-a-token-the-server-knows\n")
    token_file.chmod(stat.S_IRUSR | stat.S_IWUSR)
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(base_config(cluster, {"tokenFile": "token"})))
    client = load_client_config(2, str(path))
    kube = Kube(client, {})
    with pytest.raises(ApiError) as refused:
        kube.raw("GET", "/api/v1/namespaces/default")
    assert refused.value.status == 401
    # Rotated, as kubelet rotates a projected service-account token: the next request is
    # refused once with the old token, and the client reads the file again.
    token_file.write_text(token_of(cluster.kubeconfig) + "\n")
    assert kube.raw("GET", "/api/v1/namespaces/default")["metadata"]["name"] == "default"


def test_a_refusal_carries_the_servers_status_message(cluster: Cluster) -> None:
    kube = Kube(load_client_config(2, str(cluster.kubeconfig)), {})
    with pytest.raises(ApiError) as refused:
        kube.raw("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {}})
    assert refused.value.status in (400, 422)
    assert "name" in refused.value.message
    assert json.loads(refused.value.body)["kind"] == "Status"
