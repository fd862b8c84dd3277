"""One TF Serving process: its flags and config files, the versions it loads, and the
operations every API (REST, gRPC) shares: status, metadata, predict.

Versions load in the background: LOADING, then AVAILABLE, or END with TF Serving's
error code and message. (TF Serving 2.18 itself holds its ports closed until the
models of its initial config are available, and exits when one fails to load:
server_core.cc ``WaitUntilModelsAvailable``; it reports LOADING and END like this
for versions that arrive later. Reporting them from the start keeps a failed version
inspectable; the operator's gate treats a refused connection, LOADING and END alike.)
"""

from __future__ import annotations

import collections
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from tensorflow_serving.config import model_server_config_pb2

from . import config
from .errors import ServingError
from .flags import Flags
from .metrics import Metrics
from .servable import Registry, Servable

_VERSION_FOLDER = re.compile(r"^\d+$")


@dataclass(frozen=True)
class PathMap:
    """Where paths the server is configured with (the pod's) live on this machine:
    (pod prefix, host folder) pairs; a path under no prefix is taken as it is."""

    mounts: tuple[tuple[str, Path], ...] = ()

    def host(self, pod_path: str) -> Path:
        pure = PurePosixPath(pod_path)
        for prefix, folder in sorted(self.mounts, key=lambda m: -len(m[0])):
            try:
                return folder / pure.relative_to(prefix)
            except ValueError:
                continue
        return Path(pod_path)


@dataclass
class VersionState:
    version: int
    state: str = "LOADING"  # START | LOADING | AVAILABLE | UNLOADING | END
    error_code: str = "OK"
    error_message: str = ""
    servable: Servable | None = None


@dataclass
class Model:
    name: str
    base_path: str
    versions: dict[int, VersionState] = field(default_factory=dict)


def version_folders(base: Path) -> dict[int, Path]:
    """TF Serving's rule: every all-digit child folder is a version (``00000123`` is 123)."""
    found: dict[int, Path] = {}
    try:
        children = sorted(base.iterdir())
    except OSError:
        return found
    for child in children:
        if _VERSION_FOLDER.match(child.name) and child.is_dir():
            found.setdefault(int(child.name), child)
    return found


def aspired_versions(policy: Any, available: list[int]) -> list[int]:
    """The versions a ``model_version_policy`` names (default: the latest one)."""
    which = policy.WhichOneof("policy_choice")
    if which == "specific":
        return sorted(set(policy.specific.versions))
    if which == "all":
        return sorted(available)
    count = policy.latest.num_versions if which == "latest" and policy.latest.num_versions else 1
    return sorted(available)[-count:]


class ModelServer:
    def __init__(
        self,
        flags: Flags,
        registry: Registry,
        paths: PathMap = PathMap(),
        load_delay: Callable[[str, int], float] = lambda model, version: 0.0,
        metrics_fault: str | None = None,
        predict_seconds: float = 0.0,
    ) -> None:
        self.flags = flags
        # A test's slow model: each prediction takes at least this long.
        self.predict_seconds = predict_seconds
        self.registry = registry
        self.paths = paths
        self.load_delay = load_delay
        # A test's fault for the metrics page (rest.FAULTY_METRICS, or "drip"); None serves the truth.
        self.metrics_fault = metrics_fault
        self.metrics = Metrics()
        # Test-only: the order predictions came in (when, and each input's first value), so a
        # test can tell the operator's warm-up requests from routed traffic (rest.PREDICT_LOG).
        self.predict_log: collections.deque[dict[str, Any]] = collections.deque(maxlen=2000)
        self.metrics_path = config.metrics_path(
            paths.host(flags["monitoring_config_file"]) if flags["monitoring_config_file"] else None
        )
        if flags["enable_batching"] and flags["batching_parameters_file"]:
            config.batching_parameters(paths.host(flags["batching_parameters_file"]))
        self.models: dict[str, Model] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        for model_config in self._model_configs():
            self._add_model(model_config)

    def _model_configs(self) -> list[Any]:
        if self.flags["model_config_file"]:
            server_config = config.model_server_config(self.paths.host(self.flags["model_config_file"]))
            return list(server_config.model_config_list.config)
        if not self.flags["model_base_path"]:
            raise config.ConfigError("Both server_model_config_file and model_base_path are empty!")
        single = model_server_config_pb2.ModelConfig(
            name=self.flags["model_name"],
            base_path=self.flags["model_base_path"],
            model_platform="tensorflow",
        )
        return [single]

    def _add_model(self, model_config: Any) -> None:
        model = Model(model_config.name, model_config.base_path)
        folders = version_folders(self.paths.host(model_config.base_path))
        for version in aspired_versions(model_config.model_version_policy, list(folders)):
            model.versions[version] = VersionState(version)
            folder = folders.get(version)
            threading.Thread(
                target=self._load,
                args=(model, version, folder),
                name=f"load-{model.name}-{version}",
                daemon=True,
            ).start()
        self.models[model.name] = model

    def _load(self, model: Model, version: int, folder: Path | None) -> None:
        state = model.versions[version]
        if self._stopping.wait(self.load_delay(model.name, version)):
            return
        shown = f"{model.base_path.rstrip('/')}/{folder.name if folder else version}"
        try:
            if folder is None:
                raise ServingError(
                    "NOT_FOUND",
                    f"Could not find version {version} of model {model.name} under {model.base_path}",
                )
            servable = self.registry.load(folder, shown)
        except ServingError as exc:
            with self._lock:
                state.state, state.error_code, state.error_message = "END", exc.code, exc.message
            return
        with self._lock:
            state.servable, state.state = servable, "AVAILABLE"

    def stop(self) -> None:
        self._stopping.set()

    # ----- operations shared by REST and gRPC -----

    def _model(self, name: str) -> Model:
        model = self.models.get(name)
        if model is None:
            raise ServingError("NOT_FOUND", f"Could not find any versions of model {name}")
        return model

    def status(self, name: str, version: int | None) -> list[VersionState]:
        model = self._model(name)
        with self._lock:
            if version is None:
                return [model.versions[v] for v in sorted(model.versions, reverse=True)]
            if version not in model.versions:
                raise ServingError("NOT_FOUND", f"Could not find version {version} of model {name}")
            return [model.versions[version]]

    def servable(self, name: str, version: int | None) -> tuple[int, Servable]:
        """The AVAILABLE version asked for (the latest AVAILABLE one when none is named)."""
        model = self.models.get(name)
        with self._lock:
            ready = {
                v: s.servable for v, s in (model.versions.items() if model else ()) if s.servable is not None
            }
        if version is None and ready:
            latest = max(ready)
            return latest, ready[latest]  # type: ignore[return-value]
        if version is not None and version in ready:
            return version, ready[version]  # type: ignore[return-value]
        request = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
        raise ServingError("NOT_FOUND", f"Servable not found for request: {request}")

    def predict(
        self, name: str, version: int | None, signature_name: str, inputs: dict[str, Any], entrypoint: str
    ) -> tuple[int, dict[str, Any]]:
        """Run a prediction, counted in the metrics with its outcome and latency."""
        started = time.perf_counter()
        status = "OK"
        self.predict_log.append({"at": time.time(), "inputs": {k: _first(v) for k, v in inputs.items()}})
        try:
            served, servable = self.servable(name, version)
            if self.predict_seconds:
                time.sleep(self.predict_seconds)  # a heavier model's compute time
            return served, servable.predict(signature_name, inputs)
        except ServingError as exc:
            status = exc.code
            raise
        finally:
            if name in self.models:
                latency_us = (time.perf_counter() - started) * 1e6
                self.metrics.record(name, status, "predict", entrypoint, latency_us)


def _first(value: Any) -> Any:
    """The first scalar of a (nested) input, as JSON would hold it."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    while isinstance(value, list) and value:
        value = value[0]
    return value if isinstance(value, int | float | str | bool) else None
