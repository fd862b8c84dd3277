"""`make bench` (model server part): what the TF Serving-compatible test double costs.

    python -m testbed.bench.modelserver [--rounds 3] [--pods 1,10,200] [--seconds 10]

1. start to AVAILABLE: a fresh ``python -m testbed.modelserver`` process (TensorFlow's
   import included) until REST reports the version AVAILABLE; and the load alone;
2. memory: one process serving 1, 10 and 200 simulated pods (one loopback IP each) of
   one model, peak RSS once every pod reports AVAILABLE;
3. predict latency p50/p99 at 40 requests/s against one pod.
Medians over ``--rounds``, each in a fresh process.
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
import urllib.request
from pathlib import Path
from typing import Any

from modeldeploy.children import tfconfig
from testbed.cluster.localcluster import free_ports
from testbed.modelserver.store import make_store
from testbed.support.wait import wait_for

REPO = Path(__file__).resolve().parents[2]


def _write_config(folder: Path, store: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = tfconfig.model_config_text("mnist", 1).replace(
        f"{tfconfig.MODELS_DIR}/mnist", str(store / "mnist")
    )
    (folder / tfconfig.MODEL_CONFIG_FILE).write_text(text)
    (folder / tfconfig.MONITORING_CONFIG_FILE).write_text(
        tfconfig.monitoring_config_text(tfconfig.MonitoringConfig())
    )


def _available(address: str, port: int) -> bool:
    try:
        with urllib.request.urlopen(
            f"http://{address}:{port}/v1/models/mnist/versions/1", timeout=2
        ) as response:
            return bool(json.loads(response.read())["model_version_status"][0]["state"] == "AVAILABLE")
    except OSError:
        return False


def start_to_available(store: Path, work: Path) -> float:
    """Seconds from starting a model server process until REST reports version 1 AVAILABLE."""
    _write_config(work, store)
    rest, grpc = free_ports(2)
    started = time.monotonic()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "testbed.modelserver",
            f"--port={grpc}",
            f"--rest_api_port={rest}",
            f"--model_config_file={work / tfconfig.MODEL_CONFIG_FILE}",
            f"--monitoring_config_file={work / tfconfig.MONITORING_CONFIG_FILE}",
        ],
        cwd=REPO,
        env={**os.environ, "MODELSERVER_ADDRESS": "127.0.0.1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _available("127.0.0.1", rest), 120, interval=0.02, what="AVAILABLE")
        return time.monotonic() - started
    finally:
        process.terminate()
        process.wait(timeout=20)


def _pods_child(pods: int, store: str, work: str) -> dict[str, Any]:
    """In a fresh process: serve ``pods`` simulated pods of one model; load time and peak RSS."""
    from testbed.modelserver.flags import parse
    from testbed.modelserver.process import ServingEndpoints
    from testbed.modelserver.servable import Registry
    from testbed.modelserver.server import ModelServer, PathMap

    registry = Registry()
    _write_config(Path(work), Path(store))
    args = parse(
        [
            f"--rest_api_port={tfconfig.REST_PORT}",
            f"--model_config_file={Path(work) / tfconfig.MODEL_CONFIG_FILE}",
            f"--monitoring_config_file={Path(work) / tfconfig.MONITORING_CONFIG_FILE}",
        ]
    )
    started = time.monotonic()
    endpoints = []
    for i in range(pods):
        address = f"127.3.{i // 250}.{i % 250 + 1}"
        endpoints.append(
            ServingEndpoints.start(ModelServer(args, registry, PathMap()), address, grpc_enabled=False)
        )
    for i in range(pods):
        address = f"127.3.{i // 250}.{i % 250 + 1}"
        wait_for(functools.partial(_available, address, tfconfig.REST_PORT), 120, interval=0.05)
    loaded = time.monotonic() - started
    status = Path("/proc/self/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")) / 1024
    latencies: list[float] = []
    if pods == 1:
        latencies = _latencies(
            "127.3.0.1", tfconfig.REST_PORT, rps=40, seconds=float(os.environ["BENCH_SECONDS"])
        )
    for e in endpoints:
        e.stop()
    return {
        "pods": pods,
        "all_available_s": loaded,
        "peak_rss_mib": rss,
        "distinct_models": len(registry),
        "latencies_ms": latencies,
    }


def _latencies(address: str, port: int, rps: float, seconds: float) -> list[float]:
    """Client-side predict latency at a fixed rate (one request every 1/rps seconds)."""
    body = json.dumps({"instances": [1.0]}).encode()
    out: list[float] = []
    deadline = time.monotonic() + seconds
    next_at = time.monotonic()
    while time.monotonic() < deadline:
        request = urllib.request.Request(
            f"http://{address}:{port}/v1/models/mnist:predict", data=body, method="POST"
        )
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
        out.append((time.perf_counter() - start) * 1000)
        next_at += 1.0 / rps
        time.sleep(max(0.0, next_at - time.monotonic()))  # the request rate itself, not a wait for a state
    return out


def pods_round(pods: int, store: Path, work: Path, seconds: float) -> dict[str, Any]:
    code = (
        "import json, sys; from testbed.bench.modelserver import _pods_child; "
        f"print(json.dumps(_pods_child({pods}, {str(store)!r}, {str(work)!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, "BENCH_SECONDS": str(seconds)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pods", default="1,10,200")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.pods.split(",")]
    with tempfile.TemporaryDirectory(prefix="modelserver-bench-") as tmp:
        root = Path(tmp)
        store = make_store(root / "store")
        starts = [start_to_available(store, root / f"start-{i}") for i in range(args.rounds)]
        by_pods: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
        for i in range(args.rounds):
            for n in counts:
                by_pods[n].append(pods_round(n, store, root / f"pods-{n}-{i}", args.seconds))
    rows = [
        (
            "start to AVAILABLE (new process, TF import included)",
            f"median {statistics.median(starts):.2f}s (rounds {', '.join(f'{s:.2f}' for s in starts)})",
        ),
    ]
    rss: dict[int, float] = {}
    for n in counts:
        rss[n] = statistics.median(r["peak_rss_mib"] for r in by_pods[n])
        spread = ", ".join(f"{r['peak_rss_mib']:.0f}" for r in by_pods[n])
        ready = statistics.median(r["all_available_s"] for r in by_pods[n])
        models = {r["distinct_models"] for r in by_pods[n]}
        rows.append(
            (
                f"{n} pod(s) of one model: peak RSS",
                f"median {rss[n]:.0f} MiB ({spread}); all AVAILABLE in {ready:.2f}s; models loaded {models}",
            )
        )
    if len(counts) > 1:
        first, last = counts[0], counts[-1]
        per_pod = (rss[last] - rss[first]) / (last - first)
        rows.append(
            (
                f"memory per extra pod ({first} -> {last})",
                f"{per_pod:.2f} MiB; ratio {last}/{first} pods {rss[last] / rss[first]:.2f}",
            )
        )
    latencies = [ms for r in by_pods[counts[0]] for ms in r["latencies_ms"]]
    if latencies:
        rows.append(
            (
                "predict latency at 40 req/s (one pod)",
                f"p50 {percentile(latencies, 0.5):.2f} ms, p99 {percentile(latencies, 0.99):.2f} ms"
                f" over {len(latencies)} requests",
            )
        )
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
