"""`make bench` (pre-traffic part): how much later a new pod's gate opens with checks.

    python -m testbed.bench.pretraffic [--rounds 5] [--golden 100]

Two model server processes (the TF Serving-compatible test double, real TensorFlow) on
their own loopback IPs, port 8501 as in a pod: version 1 serving, version 7 (the same
function, exported again) as the new pod. Per round, timed in one process:
- the gate probe alone (``modelgate.version_available``), what every pod pays;
- the pre-traffic checks as the operator runs them at the gate: signature against
  version 1, ``--golden`` golden requests compared with their expected answers, then
  the same with ``compareTo: Stable`` (each request also sent to version 1), then with
  10 warm-up requests before the golden ones.
Medians over rounds, with the spread, and each as a multiple of the gate probe.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from modeldeploy.api.names import REST_PORT
from modeldeploy.api.spec import PreTraffic
from modeldeploy.children import tfconfig
from modeldeploy.probes import modelgate
from modeldeploy.probes.pretraffic import PreTrafficRunner, ServingRef
from modeldeploy.rollout.golden import parse_golden
from testbed.cluster.localcluster import free_port
from testbed.modelserver.store import make_store
from testbed.support.wait import wait_for

REPO = Path(__file__).resolve().parents[2]
SERVING_IP, NEW_IP = "127.0.0.61", "127.0.0.62"


def start_server(store: Path, work: Path, ip: str, version: int) -> subprocess.Popen[bytes]:
    work.mkdir(parents=True, exist_ok=True)
    text = tfconfig.model_config_text("mnist", version).replace(
        f"{tfconfig.MODELS_DIR}/mnist", str(store / "mnist")
    )
    (work / tfconfig.MODEL_CONFIG_FILE).write_text(text)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "testbed.modelserver",
            f"--port={free_port()}",
            f"--rest_api_port={REST_PORT}",
            f"--model_config_file={work / tfconfig.MODEL_CONFIG_FILE}",
        ],
        cwd=REPO,
        env={**os.environ, "MODELSERVER_ADDRESS": ip},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(
        lambda: modelgate.version_available(ip, "mnist", version), 120, what=f"version {version} on {ip}"
    )
    return process


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--golden", type=int, default=100)
    args = parser.parse_args(argv)
    lines = "\n".join(
        json.dumps({"instances": [float(i)], "expected": [0.5 * i + 2]}) for i in range(args.golden)
    )
    golden = parse_golden(lines, "bench")
    ref = {"configMapRef": {"name": "g", "key": "k"}}
    specs = {
        "signature + golden (Expected)": PreTraffic.model_validate({"goldenRequests": ref}),
        "signature + golden (Stable)": PreTraffic.model_validate(
            {"goldenRequests": {**ref, "compareTo": "Stable"}}
        ),
        "signature + 10 warm-up + golden (Expected)": PreTraffic.model_validate(
            {"warmupRequests": 10, "goldenRequests": ref}
        ),
    }
    runner = PreTrafficRunner()
    serving = ServingRef(1, SERVING_IP)
    figures: dict[str, list[float]] = {"gate probe alone": [], **{name: [] for name in specs}}
    with tempfile.TemporaryDirectory() as tmp:
        store = make_store(Path(tmp) / "store")
        servers = [
            start_server(store, Path(tmp) / "v1", SERVING_IP, 1),
            start_server(store, Path(tmp) / "v7", NEW_IP, 7),
        ]
        try:
            for _ in range(args.rounds):
                figures["gate probe alone"].append(
                    timed(lambda: modelgate.version_available(NEW_IP, "mnist", 7))
                )
                for name, spec in specs.items():
                    result = runner.check(spec, "mnist", 7, NEW_IP, serving, golden)
                    assert result.passed, result
                    figures[name].append(
                        timed(functools.partial(runner.check, spec, "mnist", 7, NEW_IP, serving, golden))
                    )
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=30)
    probe = statistics.median(figures["gate probe alone"])
    print(
        f"pre-traffic checks per new pod, {args.golden} golden requests, medians over {args.rounds} rounds:"
    )
    for name, values in figures.items():
        median = statistics.median(values)
        print(
            f"  {name:<44} {median:8.1f} ms  (spread {min(values):.1f}-{max(values):.1f})"
            f"  x{median / probe:.0f} the gate probe"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
