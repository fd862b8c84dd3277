"""The operator's settings: each a documented field, read once at start-up from the
environment of its Deployment (never ``os.environ`` scattered through modules)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ..build.deployment import BuildOptions


@dataclass(frozen=True)
class Settings:
    # MODELDEPLOY_WORKERS: reconcile threads. Passes are I/O-bound (API calls, model
    # checks): threads overlap the waits. A busy API server creates Services one at a
    # time, and with fewer workers its queue ran dry (docs/benchmarks.md).
    workers: int = 32
    # MODELDEPLOY_RESYNC_SECONDS: every resource is re-applied this often, repairing drift
    # in kinds no watch reports.
    resync_seconds: float = 600.0
    # MODELDEPLOY_RELIST_SECONDS: the cache is listed again this often: objects deleted
    # while a watch was down (no DELETED event ever comes for them) leave the cache.
    relist_seconds: float = 60.0
    # MODELDEPLOY_FETCHER_IMAGE: the model fetcher init container's image.
    fetcher_image: str = BuildOptions.fetcher_image

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        return cls(
            workers=int(env.get("MODELDEPLOY_WORKERS", cls.workers)),
            resync_seconds=float(env.get("MODELDEPLOY_RESYNC_SECONDS", cls.resync_seconds)),
            relist_seconds=float(env.get("MODELDEPLOY_RELIST_SECONDS", cls.relist_seconds)),
            fetcher_image=env.get("MODELDEPLOY_FETCHER_IMAGE", cls.fetcher_image),
        )

    @property
    def build_options(self) -> BuildOptions:
        return BuildOptions(fetcher_image=self.fetcher_image)
