"""The plugin's API client and namespace, chosen as kubectl chooses them: ``--kubeconfig``
(else $KUBECONFIG, else ~/.kube/config), ``--context`` (else the current one), ``-n`` (else
the context's namespace, else ``default``); in a pod, its service account and namespace."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import kubernetes

IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class Connection:
    client: kubernetes.client.ApiClient
    namespace: str

    @property
    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.client)

    @property
    def apps(self) -> kubernetes.client.AppsV1Api:
        return kubernetes.client.AppsV1Api(self.client)

    @property
    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.client)


def context_namespace(kubeconfig: str | None, context: str | None) -> str | None:
    """The namespace the kubeconfig's chosen context names, if any."""
    contexts, current = kubernetes.config.list_kube_config_contexts(config_file=kubeconfig)
    chosen = next((c for c in contexts if c["name"] == context), None) if context else current
    if chosen is None:
        raise kubernetes.config.ConfigException(f"context {context!r} is not in the kubeconfig")
    namespace: str | None = (chosen.get("context") or {}).get("namespace")
    return namespace


def connect(kubeconfig: str | None, context: str | None, namespace: str | None) -> Connection:
    if kubeconfig and not Path(kubeconfig).is_file():
        raise kubernetes.config.ConfigException(f"{kubeconfig}: no such file")
    try:
        client = kubernetes.config.new_client_from_config(config_file=kubeconfig, context=context)
        from_context = context_namespace(kubeconfig, context)
    except kubernetes.config.ConfigException:
        if kubeconfig or context:
            raise
        if "KUBERNETES_SERVICE_HOST" not in os.environ:
            raise kubernetes.config.ConfigException(
                f"none found at {os.environ.get('KUBECONFIG') or '~/.kube/config'} ($KUBECONFIG, else "
                "~/.kube/config) and not in a pod: pass --kubeconfig"
            ) from None
        # No kubeconfig at all: inside a pod.
        kubernetes.config.load_incluster_config()
        client = kubernetes.client.ApiClient()
        from_context = IN_CLUSTER_NAMESPACE.read_text().strip() if IN_CLUSTER_NAMESPACE.exists() else None
    return Connection(client, namespace or from_context or "default")
