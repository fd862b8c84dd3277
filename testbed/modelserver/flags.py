"""tensorflow_model_server's command line: exactly the flags TF Serving has, typed.

The table is data taken from TensorFlow Serving 2.18.0 (the release the operator's
default image pins): ``tensorflow_serving/model_servers/main.cc`` (``flag_list``)
for the names, ``tensorflow_serving/model_servers/server.h`` (``Server::Options``)
for the types and defaults. TF Serving parses ``--name=value`` and, for booleans,
a bare ``--name``.

One difference, on purpose: TF Serving 2.18 prints ``unknown argument: <arg>`` and
its usage for a flag it does not have, yet goes on starting (main.cc returns only when
a known flag's value does not parse), so a misspelt flag is silently ignored in
production. This double refuses to start instead, so such a mistake fails a test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# name -> (type, default)
TF_SERVING_2_18_FLAGS: dict[str, tuple[type, Any]] = {
    "port": (int, 8500),
    "grpc_socket_path": (str, ""),
    "rest_api_port": (int, 0),
    "rest_api_num_threads": (int, 0),  # 4 x schedulable CPUs when 0
    "rest_api_timeout_in_ms": (int, 30000),
    "rest_api_enable_cors_support": (bool, False),
    "enable_batching": (bool, False),
    "allow_version_labels_for_unavailable_models": (bool, False),
    "batching_parameters_file": (str, ""),
    "enable_per_model_batching_parameters": (bool, False),
    "model_config_file": (str, ""),
    "model_config_file_poll_wait_seconds": (int, 0),
    "model_name": (str, "default"),
    "model_base_path": (str, ""),
    "num_load_threads": (int, 0),
    "num_unload_threads": (int, 0),
    "max_num_load_retries": (int, 5),
    "load_retry_interval_micros": (int, 60_000_000),
    "file_system_poll_wait_seconds": (int, 1),
    "flush_filesystem_caches": (bool, True),
    "tensorflow_session_parallelism": (int, 0),
    "tensorflow_session_config_file": (str, ""),
    "tensorflow_intra_op_parallelism": (int, 0),
    "tensorflow_inter_op_parallelism": (int, 0),
    "use_alts_credentials": (bool, False),
    "ssl_config_file": (str, ""),
    "platform_config_file": (str, ""),
    "per_process_gpu_memory_fraction": (float, 0.0),
    "saved_model_tags": (str, "serve"),
    "grpc_channel_arguments": (str, ""),
    "grpc_max_threads": (int, 0),
    "enable_model_warmup": (bool, True),
    "num_request_iterations_for_warmup": (int, 0),
    "version": (bool, False),
    "monitoring_config_file": (str, ""),
    "remove_unused_fields_from_bundle_metagraph": (bool, True),
    "prefer_tflite_model": (bool, False),
    "num_tflite_pools": (int, 0),
    "num_tflite_interpreters_per_pool": (int, 1),
    "enable_signature_method_name_check": (bool, False),
    "xla_cpu_compilation_enabled": (bool, False),
    "xla_gpu_compilation_enabled": (bool, False),
    "enable_profiler": (bool, True),
    "thread_pool_factory_config_file": (str, ""),
    "mixed_precision": (str, ""),
    "skip_initialize_tpu": (bool, False),
    "enable_grpc_healthcheck_service": (bool, False),
}


class UsageError(Exception):
    """The command line TF Serving would not run with; str() is what it prints."""


@dataclass(frozen=True)
class Flags:
    values: dict[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]


def _value(name: str, kind: type, text: str | None) -> Any:
    if kind is bool:
        if text is None or text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise UsageError(f"Couldn't interpret value {text} for flag {name}.")
    if text is None:
        raise UsageError(f"Couldn't interpret value for flag {name}: it needs a value.")
    try:
        return kind(text)
    except ValueError:
        raise UsageError(f"Couldn't interpret value {text} for flag {name}.") from None


def parse(argv: list[str]) -> Flags:
    """Flags from ``argv`` (without the program name); UsageError for anything else."""
    values = {name: default for name, (_, default) in TF_SERVING_2_18_FLAGS.items()}
    for arg in argv:
        if not arg.startswith("--"):
            raise UsageError(f"unknown argument: {arg}")
        name, sep, text = arg[2:].partition("=")
        if name not in TF_SERVING_2_18_FLAGS:
            raise UsageError(f"unknown argument: {arg}")
        kind, _ = TF_SERVING_2_18_FLAGS[name]
        values[name] = _value(name, kind, text if sep else None)
    return Flags(values)
