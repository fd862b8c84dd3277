"""Client traffic to a ModelDeployment, routed the way the cluster would route it.

ClusterIPs are never dialled (and EndpointSlices refuse loopback addresses), so
this does kube-proxy's job itself: it sends each request to a ready pod that the
Service's selector matches. With an HTTPRoute named after the resource, it first
picks a backend Service by the route's weights, as a gateway would. It counts
what each version received and answered, so tests can assert where traffic went.

Each request predicts one input from ``inputs``, each pod getting them in turn: which
inputs are sent decides which requests a model that fails on part of its input fails.
Per pod, so the share a version fails does not depend on how many pods there are (one
turn over all requests with three inputs and three pods sent every pod the same input).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kubernetes
import urllib3

from modeldeploy.api.names import LABEL_VERSION, REST_PORT


class TrafficDriver:
    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        namespace: str,
        name: str,
        model: str,
        rps: float = 40.0,
        workers: int = 8,
        inputs: tuple[float, ...] = (1.0,),
    ) -> None:
        self.core = kubernetes.client.CoreV1Api(api)
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.namespace, self.name, self.model = namespace, name, model
        self.rps, self.workers = rps, workers
        self.inputs = inputs  # replaced whole to change what is sent
        self.sent: Counter[int] = Counter()  # version -> requests answered (any status)
        self.failed: Counter[int] = Counter()
        self.answers: dict[int, dict[float, Any]] = {}  # version -> input -> last prediction
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._routes: list[tuple[int, list[tuple[str, int]]]] = []  # (weight, [(ip, version)])
        self._thread = threading.Thread(target=self._run, name=f"traffic-{name}", daemon=True)

    def start(self) -> TrafficDriver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def counts(self) -> dict[int, int]:
        with self._lock:
            return dict(self.sent)

    # ----- routing -----

    def _ready_pods(self, selector: dict[str, str]) -> list[tuple[str, int]]:
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=label_selector).items
        ready = []
        for pod in pods:
            conditions = {c.type: c.status for c in pod.status.conditions or []}
            if (
                pod.metadata.deletion_timestamp is None
                and conditions.get("Ready") == "True"
                and pod.status.pod_ip
            ):
                ready.append((pod.status.pod_ip, int(pod.metadata.labels.get(LABEL_VERSION, "0"))))
        return sorted(ready)

    def _service_pods(self, service: str) -> list[tuple[str, int]]:
        try:
            svc = self.core.read_namespaced_service(service, self.namespace)
        except kubernetes.client.exceptions.ApiException:
            return []
        return self._ready_pods(svc.spec.selector or {})

    def _refresh_routes(self) -> None:
        try:
            route: dict[str, Any] = self.custom.get_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", self.namespace, "httproutes", self.name
            )
            backends = route["spec"]["rules"][0]["backendRefs"]
            routes = [(int(b.get("weight", 1)), self._service_pods(b["name"])) for b in backends]
        except (kubernetes.client.exceptions.ApiException, KeyError, IndexError):
            routes = [(100, self._service_pods(self.name))]
        self._routes = [(w, pods) for w, pods in routes if w > 0 and pods]

    def _pick(self, counter: itertools.count[int]) -> tuple[str, int] | None:
        routes = self._routes
        total = sum(w for w, _ in routes)
        if total == 0:
            return None
        n = next(counter)
        slot = (n * 37) % total  # spread deterministically across the weights
        for weight, pods in routes:
            if slot < weight:
                return pods[n % len(pods)]
            slot -= weight
        return None

    def predict(self, value: float) -> tuple[int, Any]:
        """One request now, routed as the traffic is: (version that answered, its prediction)."""
        self._refresh_routes()
        target = self._pick(itertools.count())
        if target is None:
            raise RuntimeError(f"no pod of {self.namespace}/{self.name} takes traffic")
        ip, version = target
        return version, self._post(ip, value)

    def _post(self, ip: str, value: float) -> Any:
        """One prediction of ``value`` from the pod at ``ip``; HTTPError when it refuses."""
        request = urllib.request.Request(
            f"http://{ip}:{REST_PORT}/v1/models/{self.model}:predict",
            data=json.dumps({"instances": [value]}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())["predictions"][0]

    # ----- sending -----

    def _send(self, ip: str, version: int, value: float) -> None:
        prediction = None
        try:
            prediction = self._post(ip, value)
        except urllib.error.HTTPError:
            pass
        except (OSError, ValueError, KeyError, IndexError):
            return  # the pod went away between routing and sending
        with self._lock:
            self.sent[version] += 1
            if prediction is None:
                self.failed[version] += 1
            else:
                self.answers.setdefault(version, {})[value] = prediction

    def _run(self) -> None:
        counter = itertools.count()
        sent: dict[str, int] = {}  # per pod IP: that pod's turn in the inputs
        next_refresh = 0.0
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_refresh:
                    # With the API server down, traffic keeps the last routes, as kube-proxy does.
                    with contextlib.suppress(
                        kubernetes.client.exceptions.ApiException, urllib3.exceptions.HTTPError
                    ):
                        self._refresh_routes()
                    next_refresh = now + 0.5
                target = self._pick(counter)
                if target is not None:
                    inputs, turn = self.inputs, sent.get(target[0], 0)
                    pool.submit(self._send, *target, inputs[turn % len(inputs)])
                    sent[target[0]] = turn + 1
                self._stop.wait(1.0 / self.rps)


def main(argv: list[str]) -> int:
    """``python -m testbed.modelserver.traffic --kubeconfig K --namespace NS --name MD [--rps N]
    [--inputs 1,9]``."""
    import argparse
    import signal

    parser = argparse.ArgumentParser()
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--model", default=None)
    parser.add_argument("--rps", type=float, default=40.0)
    parser.add_argument("--inputs", default="1.0", help="comma-separated inputs, sent in turn")
    args = parser.parse_args(argv)
    api = kubernetes.config.new_client_from_config(config_file=args.kubeconfig)
    inputs = tuple(float(x) for x in args.inputs.split(","))
    driver = TrafficDriver(
        api, args.namespace, args.name, args.model or args.name, rps=args.rps, inputs=inputs
    ).start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    while not stopped.wait(1.0):
        pass
    driver.stop()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
