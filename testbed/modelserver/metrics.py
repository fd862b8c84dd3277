"""TF Serving's request metrics, counted from real requests and exposed as TF Serving's
Prometheus exporter names them (``tensorflow_serving/servables/tensorflow/util.cc``):
``/tensorflow/serving/request_count{model_name,status}`` and the
``/tensorflow/serving/request_latency{model_name,API,entrypoint}`` histogram in
microseconds with ``Buckets::Exponential(10, 1.8, 33)``."""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
BUCKETS_US = tuple(10 * 1.8**i for i in range(33))


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = defaultdict(int)
        # (model, API, entrypoint) -> [per-bucket counts..., +Inf bucket], sum
        self._latency: dict[tuple[str, str, str], tuple[list[int], list[float]]] = {}

    def record(self, model: str, status: str, api: str, entrypoint: str, latency_us: float) -> None:
        with self._lock:
            self._counts[(model, status)] += 1
            buckets, total = self._latency.setdefault(
                (model, api, entrypoint), ([0] * (len(BUCKETS_US) + 1), [0.0])
            )
            buckets[bisect.bisect_left(BUCKETS_US, latency_us)] += 1
            total[0] += latency_us

    def exposition(self) -> str:
        lines = [f"# TYPE {REQUEST_COUNT} counter"]
        with self._lock:
            for (model, status), count in sorted(self._counts.items()):
                lines.append(f'{REQUEST_COUNT}{{model_name="{model}",status="{status}"}} {count}')
            lines.append(f"# TYPE {REQUEST_LATENCY} histogram")
            for (model, api, entrypoint), (buckets, total) in sorted(self._latency.items()):
                labels = f'model_name="{model}",API="{api}",entrypoint="{entrypoint}"'
                cumulative = 0
                for bound, count in zip(BUCKETS_US, buckets, strict=False):
                    cumulative += count
                    lines.append(f'{REQUEST_LATENCY}_bucket{{{labels},le="{bound:.6g}"}} {cumulative}')
                cumulative += buckets[-1]
                lines.append(f'{REQUEST_LATENCY}_bucket{{{labels},le="+Inf"}} {cumulative}')
                lines.append(f"{REQUEST_LATENCY}_sum{{{labels}}} {total[0]:g}")
                lines.append(f"{REQUEST_LATENCY}_count{{{labels}}} {cumulative}")
        return "\n".join(lines) + "\n"
