"""Reading kubeconfig files and the pod's service account (kube/credentials.py) the way
kubectl does, and an operator process that never imports the kubernetes package."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.kube import credentials

pytestmark = pytest.mark.timeout(60)


def kubeconfig(
    path: Path,
    *,
    current: str | None = "c",
    cluster: dict[str, Any] | None = None,
    user: dict[str, Any] | None = None,
) -> Path:
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "k", "cluster": cluster or {"server": "https://127.0.0.1:6443/"}}],
        "users": [{"name": "u", "user": user or {"token": "t0"}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u", "namespace": "ml"}}],
    }
    if current:
        config["current-context"] = current
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_current_context_gives_server_namespace_token_and_ca(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(b"PEM CA")
    path = kubeconfig(
        tmp_path / "config", cluster={"server": "https://127.0.0.1:6443/", "certificate-authority": "ca.crt"}
    )
    found = credentials.load(path)
    assert found.server == "https://127.0.0.1:6443"
    assert found.namespace == "ml"
    assert found.ca == b"PEM CA", "a relative CA file is read beside the kubeconfig"
    assert found.identity().token == "t0"


def test_files_in_kubeconfig_merge_with_the_first_value_winning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = tmp_path / "first"
    first.write_text(yaml.safe_dump({"users": [{"name": "u", "user": {"token": "from-first"}}]}))
    second = kubeconfig(tmp_path / "second")
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    monkeypatch.setattr(credentials, "SERVICE_ACCOUNT", tmp_path / "no-service-account")
    found = credentials.load()
    assert found.identity().token == "from-first"
    assert found.server == "https://127.0.0.1:6443"


def test_certificate_data_is_decoded(tmp_path: Path) -> None:
    user = {
        "client-certificate-data": base64.b64encode(b"CERT").decode(),
        "client-key-data": base64.b64encode(b"KEY").decode(),
    }
    cluster = {
        "server": "https://127.0.0.1:1",
        "certificate-authority-data": base64.b64encode(b"CA").decode(),
    }
    found = credentials.load(kubeconfig(tmp_path / "config", cluster=cluster, user=user))
    identity = found.identity()
    assert (found.ca, identity.certificate, identity.key, identity.token) == (b"CA", b"CERT", b"KEY", None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"current": None}, "no current-context"),
        ({"current": "elsewhere"}, "context 'elsewhere' is not defined"),
        ({"cluster": {"insecure-skip-tls-verify": True}}, "names no cluster with a server"),
        ({"user": {"auth-provider": {"name": "gcp"}}}, "auth-provider"),
    ],
)
def test_an_unusable_kubeconfig_is_refused_naming_the_problem(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    path = kubeconfig(tmp_path / "config", **change)
    with pytest.raises(credentials.CredentialsError, match=message) as refused:
        credentials.load(path)
    assert str(path) in str(refused.value)


def test_in_a_pod_the_service_account_is_used_and_its_token_reread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("first\n")
    (account / "namespace").write_text("modeldeploy-system")
    (account / "ca.crt").write_bytes(b"CLUSTER CA")
    monkeypatch.setattr(credentials, "SERVICE_ACCOUNT", account)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    found = credentials.load()
    assert found.server == "https://[fd00::1]:443"
    assert (found.namespace, found.ca) == ("modeldeploy-system", b"CLUSTER CA")
    assert found.identity().token == "first"
    (account / "token").write_text("rotated\n")
    assert found.identity().token == "first", "read again only after a while, or after a 401"
    found.renew()
    assert found.identity().token == "rotated"


def test_a_failing_exec_plugin_is_an_error_with_its_output(tmp_path: Path) -> None:
    user = {"exec": {"command": sys.executable, "args": ["-c", "import sys; sys.exit('no login for you')"]}}
    found = credentials.load(kubeconfig(tmp_path / "config", user=user))
    with pytest.raises(credentials.CredentialsError, match="exited 1: no login for you"):
        found.identity()


def test_the_operator_process_never_imports_the_kubernetes_package() -> None:
    # The operator's entry point, run far enough to load kopf and the handlers (kopf run
    # --help exits before connecting); what was imported is printed at exit.
    code = (
        "import atexit, sys\n"
        "def report():\n"
        "    import modeldeploy.control.handlers\n"
        "    print(sorted(m for m in sys.modules if m and m.startswith('kubernetes.')))\n"
        "atexit.register(report)\n"
        "sys.argv = ['modeldeploy-operator', '--help']\n"
        "from modeldeploy.control.__main__ import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert "--standalone" in done.stdout, done.stderr  # kopf run's own help: kopf was loaded
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout[-2000:]
    # Without the entry point, kopf alone would pull in the whole generated client.
    plain = "import sys, kopf; print(sum(1 for m in sys.modules if m.startswith('kubernetes.')))"
    loaded = subprocess.run(
        [sys.executable, "-c", plain], capture_output=True, text=True, timeout=60, check=True
    )
    assert int(loaded.stdout) > 100
