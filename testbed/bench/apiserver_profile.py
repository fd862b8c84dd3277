"""A CPU profile of the API server over one timed phase, for `go tool pprof`.

Only with ``MODELDEPLOY_APISERVER_PROFILING=1`` (the local cluster then starts the API
server with ``--profiling=true``). The profile is taken over the first ``seconds`` of a
phase, the same window for the floor and the operator, so the two can be compared with
``go tool pprof -top -diff_base floor.pprof operator.pprof``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import kubernetes


def enabled() -> bool:
    return bool(os.environ.get("MODELDEPLOY_APISERVER_PROFILING"))


class ApiServerProfile:
    def __init__(self, api: kubernetes.client.ApiClient, out: Path, seconds: int) -> None:
        self.api = api
        self.out = out
        self.seconds = seconds
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._take, name=f"profile-{out.stem}", daemon=True)

    def start(self) -> ApiServerProfile:
        self._thread.start()
        return self

    def _take(self) -> None:
        try:
            response = self.api.call_api(
                "/debug/pprof/profile",
                "GET",
                query_params=[("seconds", str(self.seconds))],
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=self.seconds + 60,
            )  # without preloading, the raw urllib3 response
            self.out.write_bytes(response.data)
        except BaseException as error:  # reported by join(): a missing profile must not pass unnoticed
            self.error = error

    def join(self) -> Path:
        self._thread.join(self.seconds + 90)
        if self.error is not None:
            raise RuntimeError(f"API server profile {self.out}: {self.error}") from self.error
        return self.out
