"""Where the API server is and who the operator is to it: the pod's service account, else
the current context of the KUBECONFIG files (else ~/.kube/config).

One loader serves both this layer's requests and kopf's watches (the operator's login
handler), so the two can never talk to different clusters.

Supported: a CA file or data (or insecure-skip-tls-verify), client certificate and key as
files or data, a token, a token file (re-read, as projected service-account tokens
rotate), and exec credential plugins (client.authentication.k8s.io, as cloud clusters'
kubeconfigs use), re-run when their credential expires.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# A token file is read again after this long: kubelet rotates projected tokens well
# before they expire, and client-go re-reads them every minute too.
TOKEN_FILE_REREAD_SECONDS = 60.0
# An exec credential is renewed this long before it expires.
EXEC_RENEW_MARGIN_SECONDS = 60.0
EXEC_TIMEOUT_SECONDS = 60.0


class CredentialsError(Exception):
    """The kubeconfig cannot be used; the message names the file and field."""


@dataclass(frozen=True)
class Identity:
    """What authenticates a request at one moment: a bearer token, a client certificate
    (PEM bytes), or neither. ``expires`` (epoch seconds) is when the server stops taking
    it; ``refresh_at`` when its source is asked again (a token file, before that)."""

    token: str | None = None
    certificate: bytes | None = None
    key: bytes | None = None
    expires: float | None = None
    refresh_at: float | None = None


@dataclass
class Credentials:
    server: str
    ca: bytes | None = None  # PEM
    insecure: bool = False
    namespace: str | None = None
    # The fixed part of the identity (a token or certificate written in the kubeconfig).
    fixed: Identity = field(default_factory=Identity)
    # A source asked again when its identity expires (token file, exec plugin).
    source: Callable[[], Identity] | None = None
    _current: Identity | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def identity(self) -> Identity:
        if self.source is None:
            return self.fixed
        with self._lock:
            current = self._current
            if current is None or (current.refresh_at is not None and current.refresh_at <= time.time()):
                current = self._current = self.source()
            return current

    def renew(self) -> None:
        """Forget a source's identity, as after a 401: the next request asks again."""
        with self._lock:
            self._current = None


def load(kubeconfig: str | os.PathLike[str] | None = None) -> Credentials:
    """A given kubeconfig; else the service account when in a pod; else KUBECONFIG or
    ~/.kube/config."""
    in_a_pod = (SERVICE_ACCOUNT / "token").exists() and os.environ.get("KUBERNETES_SERVICE_HOST")
    if kubeconfig is None and in_a_pod:
        return in_cluster()
    paths = [Path(kubeconfig)] if kubeconfig is not None else kubeconfig_paths()
    return from_kubeconfig(paths)


def in_cluster() -> Credentials:
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    host = f"[{host}]" if ":" in host else host
    namespace_file = SERVICE_ACCOUNT / "namespace"
    ca_file = SERVICE_ACCOUNT / "ca.crt"
    return Credentials(
        server=f"https://{host}:{port}",
        ca=ca_file.read_bytes() if ca_file.exists() else None,
        namespace=namespace_file.read_text().strip() if namespace_file.exists() else None,
        source=token_file_source(SERVICE_ACCOUNT / "token"),
    )


def kubeconfig_paths() -> list[Path]:
    listed = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p.strip()]
    if listed:
        return [Path(p.strip()).expanduser() for p in listed]
    return [Path("~/.kube/config").expanduser()]


def from_kubeconfig(paths: list[Path]) -> Credentials:
    """The current context of the merged files: as kubectl merges them, the first file that
    sets a value (current-context, or an entry of a given name) wins."""
    current: str | None = None
    entries: dict[str, dict[str, dict[str, Any]]] = {"contexts": {}, "clusters": {}, "users": {}}
    origin: dict[tuple[str, str], Path] = {}
    for path in paths:
        try:
            config = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise CredentialsError(f"cannot read kubeconfig {path}: {exc}") from None
        current = current or config.get("current-context")
        for section, inner in (("contexts", "context"), ("clusters", "cluster"), ("users", "user")):
            for item in config.get(section) or []:
                if item.get("name") not in entries[section]:
                    entries[section][item["name"]] = item.get(inner) or {}
                    origin[(section, item["name"])] = path
    where = ", ".join(str(p) for p in paths)
    if not current:
        raise CredentialsError(f"no current-context in kubeconfig {where}")
    context = entries["contexts"].get(current)
    if context is None:
        raise CredentialsError(f"kubeconfig {where}: context {current!r} is not defined")
    cluster = entries["clusters"].get(context.get("cluster", ""))
    if cluster is None or not cluster.get("server"):
        raise CredentialsError(f"kubeconfig {where}: context {current!r} names no cluster with a server")
    user = entries["users"].get(context.get("user", ""), {})
    # Relative file names are relative to the file that holds the entry, as in kubectl.
    cluster_dir = origin[("clusters", context["cluster"])].parent
    user_dir = origin.get(("users", context.get("user", "")), paths[0]).parent
    fixed = Identity(
        token=user.get("token"),
        certificate=_file_or_data(user, "client-certificate", user_dir),
        key=_file_or_data(user, "client-key", user_dir),
    )
    source: Callable[[], Identity] | None = None
    if user.get("exec"):
        source = exec_source(user["exec"], user_dir)
    elif user.get("tokenFile"):
        source = token_file_source(user_dir / user["tokenFile"])
    elif user.get("auth-provider"):
        raise CredentialsError(
            f"kubeconfig {where}: user {context.get('user')!r} uses an auth-provider, which kubectl"
            " itself no longer supports; use an exec plugin, a token or a client certificate"
        )
    return Credentials(
        server=str(cluster["server"]).rstrip("/"),
        ca=_file_or_data(cluster, "certificate-authority", cluster_dir),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        namespace=context.get("namespace"),
        fixed=fixed,
        source=source,
    )


def _file_or_data(entry: dict[str, Any], key: str, base: Path) -> bytes | None:
    if entry.get(f"{key}-data"):
        return base64.b64decode(str(entry[f"{key}-data"]))
    if entry.get(key):
        return (base / str(entry[key])).read_bytes()
    return None


def token_file_source(path: Path) -> Callable[[], Identity]:
    def read() -> Identity:
        return Identity(token=path.read_text().strip(), refresh_at=time.time() + TOKEN_FILE_REREAD_SECONDS)

    return read


def exec_source(spec: dict[str, Any], base: Path) -> Callable[[], Identity]:
    """Run a client.authentication.k8s.io exec plugin and take the ExecCredential it prints."""
    command = str(spec.get("command") or "")
    if not command:
        raise CredentialsError("kubeconfig: user.exec has no command")
    # A command with a slash is relative to the kubeconfig's directory; a bare name is on PATH.
    argv = [str(base / command) if "/" in command and not command.startswith("/") else command]
    argv += [str(arg) for arg in spec.get("args") or []]
    env = {**os.environ, **{e["name"]: str(e["value"]) for e in spec.get("env") or []}}
    env["KUBERNETES_EXEC_INFO"] = json.dumps(
        {
            "apiVersion": spec.get("apiVersion", "client.authentication.k8s.io/v1"),
            "kind": "ExecCredential",
            "spec": {"interactive": False},
        }
    )

    def run() -> Identity:
        try:
            done = subprocess.run(
                argv, env=env, capture_output=True, text=True, timeout=EXEC_TIMEOUT_SECONDS, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CredentialsError(f"exec credential plugin {command}: {exc}") from None
        if done.returncode != 0:
            raise CredentialsError(
                f"exec credential plugin {command} exited {done.returncode}: {done.stderr.strip()[:500]}"
            )
        try:
            status = json.loads(done.stdout).get("status") or {}
        except ValueError:
            raise CredentialsError(f"exec credential plugin {command} printed no ExecCredential") from None
        expires = None
        if status.get("expirationTimestamp"):
            stamp = str(status["expirationTimestamp"]).replace("Z", "+00:00")
            expires = datetime.datetime.fromisoformat(stamp).timestamp()
        certificate, key = status.get("clientCertificateData"), status.get("clientKeyData")
        return Identity(
            token=status.get("token"),
            certificate=certificate.encode() if certificate else None,
            key=key.encode() if key else None,
            expires=expires,
            refresh_at=expires - EXEC_RENEW_MARGIN_SECONDS if expires is not None else None,
        )

    return run
