"""The operator's own requests beside applying children: the model gate on a pod's status,
the fenced status write, Events on a ModelDeployment, and the two reads a pass may need
(a ModelDeployment after a conflict, a user's ConfigMap of golden requests)."""

from __future__ import annotations

import datetime
import logging
import uuid
from typing import Any

from ..api.names import API_VERSION, CONDITION_MODEL_AVAILABLE, FIELD_MANAGER, KIND, LABEL_MODEL_AVAILABLE
from ..api.times import format_time, to_seconds
from ..kube.client import Kube
from ..kube.transport import ApiError

LOG = logging.getLogger(__name__)
# The API server keeps at most this much of an Event's message.
EVENT_MESSAGE_LIMIT = 1024


class Writes:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def now(self) -> str:
        """Now by the API server's clock, as status carries canary times."""
        return format_time(datetime.datetime.fromtimestamp(self.kube.server_time(), datetime.UTC))

    def read_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A ConfigMap of the user's (golden requests), or None when it does not exist.
        Read when a check needs it, not watched: it is needed only as new pods start."""
        return self.kube.get("ConfigMap", namespace, name)

    def read_model_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.kube.get(KIND, namespace, name)

    def open_model_gate(
        self, namespace: str, name: str, message: str, resource_version: str | None = None
    ) -> dict[str, Any] | None:
        """Mark a live pod's model as available, in one request: the label its Services
        select and the condition its readinessGates wait for.

        Both go through the status subresource: for pods it keeps labels it is given (only
        spec and owner references are reset), and a strategic merge patch merges
        conditions by type, leaving the kubelet's own. The pod as patched; None if it is gone
        or, with ``resource_version``, changed since that version (see ``_set_model_gate``).
        """
        return self._set_model_gate(namespace, name, (True, "ModelAvailable", message), resource_version)

    def close_model_gate(
        self, namespace: str, name: str, reason: str, message: str, resource_version: str | None = None
    ) -> dict[str, Any] | None:
        """Take a pod out of service until its model is AVAILABLE again: the label goes
        (Services stop selecting it) and the condition turns False (it stops being Ready).
        The pod as patched; None if it is gone or changed since ``resource_version``."""
        return self._set_model_gate(namespace, name, (False, reason, message), resource_version)

    def _set_model_gate(
        self, namespace: str, name: str, gate: tuple[bool, str, str], resource_version: str | None
    ) -> dict[str, Any] | None:
        """Fenced with ``resource_version`` (the pod as the pass saw it): the server refuses
        the patch (409) if the pod changed since, a replica that leads now having set its
        gate among others, and None is answered: the pod's watch event brings a pass that
        decides again from the pod as it is."""
        available, reason, message = gate
        condition = {
            "type": CONDITION_MODEL_AVAILABLE,
            "status": "True" if available else "False",
            "reason": reason,
            "message": message,
            "lastTransitionTime": self.now(),
        }
        metadata: dict[str, Any] = {
            # null removes the label in a strategic merge patch
            "labels": {LABEL_MODEL_AVAILABLE: "true" if available else None}
        }
        if resource_version:
            metadata["resourceVersion"] = resource_version  # a precondition of the patch
        patch = {"metadata": metadata, "status": {"conditions": [condition]}}
        try:
            return self.kube.patch(
                "Pod",
                namespace,
                name,
                patch,
                content_type="application/strategic-merge-patch+json",
                subresource="status",
            )
        except ApiError as exc:
            # A pod that went away needs no gate; one that changed is decided on again.
            if exc.status == 409 and resource_version:
                LOG.info(
                    "model gate of pod %s/%s not set: the pod changed since the pass read it", namespace, name
                )
                return None
            if exc.status != 404:
                raise
            return None

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
        return self.kube.patch(
            KIND, namespace, name, ops, content_type="application/json-patch+json", subresource="status"
        )

    def post_event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event on the ModelDeployment; failures are logged, never raised."""
        meta = involved["metadata"]
        try:
            self.kube.create("Event", meta["namespace"], self._event(involved, type_, reason, message))
        except ApiError as exc:
            LOG.warning(
                "could not post event %s on %s/%s: %s", reason, meta["namespace"], meta["name"], exc.reason
            )

    def _event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> dict[str, Any]:
        meta = involved["metadata"]
        now = to_seconds(self.now())
        return {
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
            "message": message[:EVENT_MESSAGE_LIMIT],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
        }
