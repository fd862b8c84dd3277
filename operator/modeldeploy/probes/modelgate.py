"""The model-aware gate: a pod serves only once TF Serving reports its exact version AVAILABLE.

An open port or a passing readiness probe is not enough: TF Serving answers its
REST status endpoint while the model is still LOADING. The reconcile pass asks
each new pod, and labels it when the version is AVAILABLE; Services select that label,
so no traffic reaches a pod before its model is loaded.
"""

from __future__ import annotations

from ..api.names import REST_PORT
from ..rollout.bounded_json import loads_bounded
from . import bounded_http

PROBE_TIMEOUT_SECONDS = 1.0
# A model status answer is a few hundred bytes.
MAX_REPLY_BYTES = 64 << 10


def version_available(pod_ip: str, model: str, version: int, port: int = REST_PORT) -> bool:
    """True when TF Serving on ``pod_ip`` reports ``model`` version ``version`` AVAILABLE."""
    url = f"http://{pod_ip}:{port}/v1/models/{model}/versions/{version}"
    try:
        status, raw = bounded_http.get(url, PROBE_TIMEOUT_SECONDS, MAX_REPLY_BYTES)
        body = loads_bounded(raw)
        entries = body.get("model_version_status") or [] if status == 200 and isinstance(body, dict) else []
        return any(
            isinstance(entry, dict)
            and str(entry.get("version")) == str(version)
            and entry.get("state") == "AVAILABLE"
            for entry in entries
        )
    except (bounded_http.FetchError, ValueError, TypeError):
        return False
