"""One SavedModel loaded with real TensorFlow: its signatures and its predictions.

Loaded models are shared by path across every simulated pod of a process, so memory
grows with the number of distinct models, not with the number of pods.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from .errors import ServingError, from_tensorflow

DEFAULT_SIGNATURE = "serving_default"
SERVE_TAG = "serve"


@dataclass
class Servable:
    path: Path
    signature_defs: dict[str, meta_graph_pb2.SignatureDef]
    functions: Any  # the loaded object's signatures: name -> ConcreteFunction

    def signature(self, name: str) -> meta_graph_pb2.SignatureDef:
        key = name or DEFAULT_SIGNATURE
        if key not in self.signature_defs:
            raise ServingError("FAILED_PRECONDITION", f'Serving signature key "{key}" not found.')
        return self.signature_defs[key]

    def signature_def_map(self) -> get_model_metadata_pb2.SignatureDefMap:
        mapping = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in self.signature_defs.items():
            mapping.signature_def[key].CopyFrom(signature)
        return mapping

    def predict(self, signature_name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """Run one signature on named inputs (lists or arrays); outputs as numpy arrays."""
        key = signature_name or DEFAULT_SIGNATURE
        signature = self.signature(key)
        expected = set(signature.inputs)
        for alias in inputs:
            if alias not in expected:
                raise ServingError(
                    "INVALID_ARGUMENT",
                    f"input tensor alias not found in signature: {alias}. "
                    f"Inputs expected to be in the set {{{','.join(sorted(expected))}}}.",
                )
        missing = expected - set(inputs)
        if missing:
            raise ServingError(
                "INVALID_ARGUMENT",
                f"Missing input tensor alias(es): {','.join(sorted(missing))}. "
                f"Inputs expected to be in the set {{{','.join(sorted(expected))}}}.",
            )
        tensors = {}
        for alias, value in inputs.items():
            dtype = tf.dtypes.as_dtype(signature.inputs[alias].dtype)
            try:
                tensors[alias] = tf.constant(value, dtype=dtype)
            except (TypeError, ValueError) as exc:
                raise ServingError(
                    "INVALID_ARGUMENT", f"input '{alias}' is not of type {dtype.name}: {exc}"
                ) from None
        try:
            outputs = self.functions[key](**tensors)
        except tf.errors.OpError as exc:
            raise from_tensorflow(exc) from None
        return {alias: tensor.numpy() for alias, tensor in outputs.items()}


def _signature_defs(path: Path) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The serving meta graph's SignatureDefs, read from saved_model.pb as TF Serving reads them."""
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((path / "saved_model.pb").read_bytes())
    for meta_graph in saved.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return {k: v for k, v in meta_graph.signature_def.items() if not k.startswith("__")}
    raise ServingError(
        "NOT_FOUND",
        f"Could not find meta graph def matching supplied tags: {{ {SERVE_TAG} }}. "
        "To inspect available tag-sets in the SavedModel, please use the SavedModel CLI: `saved_model_cli`",
    )


def load(path: Path, shown_as: str) -> Servable:
    """Load the SavedModel in ``path``; errors name ``shown_as`` (the path inside the pod)."""
    if not (path / "saved_model.pb").exists() and not (path / "saved_model.pbtxt").exists():
        raise ServingError(
            "NOT_FOUND",
            f"Could not find SavedModel .pb or .pbtxt at supplied export directory path: {shown_as}",
        )
    try:
        loaded = tf.saved_model.load(str(path), tags=[SERVE_TAG])
        signature_defs = _signature_defs(path)
    except ServingError:
        raise
    except tf.errors.OpError as exc:
        raise from_tensorflow(exc) from None
    except Exception as exc:  # a corrupt file: TensorFlow raises several kinds
        raise ServingError("DATA_LOSS", f"Failed to load SavedModel at {shown_as}: {exc}") from None
    return Servable(path, signature_defs, loaded.signatures)


class Registry:
    """Loaded models of this process, by real path: each loads once, however many pods serve it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self._loaded: dict[str, Servable] = {}

    def load(self, path: Path, shown_as: str) -> Servable:
        key = os.path.realpath(path)
        with self._lock:
            if key in self._loaded:
                return self._loaded[key]
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if key in self._loaded:
                    return self._loaded[key]
            servable = load(path, shown_as)  # a failure is not cached: the next pod tries again
            with self._lock:
                self._loaded[key] = servable
            return servable

    def __len__(self) -> int:
        with self._lock:
            return len(self._loaded)
