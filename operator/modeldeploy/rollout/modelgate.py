"""The model-aware gate: a pod serves only once TF Serving reports its exact version AVAILABLE.

An open port or a passing readiness probe is not enough: TF Serving answers its
REST status endpoint while the model is still LOADING. The reconcile pass asks
each new pod, and labels it when the version is AVAILABLE; Services select that label,
so no traffic reaches a pod before its model is loaded.
"""

from __future__ import annotations

import json
import urllib.request

from ..api.names import REST_PORT

PROBE_TIMEOUT_SECONDS = 1.0


def version_available(pod_ip: str, model: str, version: int, port: int = REST_PORT) -> bool:
    """True when TF Serving on ``pod_ip`` reports ``model`` version ``version`` AVAILABLE."""
    url = f"http://{pod_ip}:{port}/v1/models/{model}/versions/{version}"
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_SECONDS) as response:
            body = json.loads(response.read())
    except (OSError, ValueError):
        return False
    return any(
        str(status.get("version")) == str(version) and status.get("state") == "AVAILABLE"
        for status in body.get("model_version_status") or []
    )
