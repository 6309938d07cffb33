"""A small exporter serving Istio's standard request metrics, for the Prometheus tests.

An Istio mesh reports every request twice, from the caller's sidecar
(`reporter="source"`) and from the server's (`reporter="destination"`), as
`istio_requests_total` (by `response_code`) and `istio_request_duration_milliseconds`
(a histogram with Istio's default buckets, in milliseconds), labelled with the
destination's workload, service and `version`. This exporter serves exactly those
names and labels from counts a test records, on a free loopback port:

    with IstioExporter().start() as exporter:
        exporter.record("fraud", "v2", code=503, milliseconds=40.0)
        exporter.restart()  # the pod restarted: every counter is back at zero
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from gray.gateway.testing import free_port

# Istio's default buckets for istio_request_duration_milliseconds.
DURATION_BUCKETS_MS = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
    600000, 1800000, 3600000,
)  # fmt: skip
REPORTERS = ("source", "destination")
_REQUEST_LABELS = [
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "destination_workload",
    "destination_workload_namespace",
    "destination_service",
    "destination_service_name",
    "destination_version",
    "destination_app",
    "request_protocol",
    "response_code",
    "response_flags",
    "connection_security_policy",
]


@dataclass(frozen=True)
class _Key:
    service: str
    version: str
    reporter: str
    code: int


class IstioExporter:
    """Serves `/metrics` with Istio's series for the requests `record`ed so far."""

    def __init__(self, namespace: str = "models", port: int | None = None) -> None:
        self.namespace = namespace
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._requests: Counter[_Key] = Counter()
        self._buckets: defaultdict[_Key, list[int]] = defaultdict(
            lambda: [0] * len(DURATION_BUCKETS_MS)
        )
        self._sums: Counter[_Key] = Counter()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def record(
        self, service: str, version: str, code: int = 200, milliseconds: float = 10.0
    ) -> None:
        """One request to `service`'s `version`, reported by both sidecars."""
        with self._lock:
            for reporter in REPORTERS:
                key = _Key(service, version, reporter, code)
                self._requests[key] += 1
                self._sums[key] += milliseconds
                buckets = self._buckets[key]
                for index, edge in enumerate(DURATION_BUCKETS_MS):
                    if milliseconds <= edge:
                        buckets[index] += 1

    def restart(self) -> None:
        """What a pod restart does to its sidecar's counters: all back to zero."""
        with self._lock:
            self._requests.clear()
            self._buckets.clear()
            self._sums.clear()

    def start(self) -> IstioExporter:
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404)
                    return
                body = exporter.render()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> IstioExporter:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def render(self) -> bytes:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self))
        return generate_latest(registry)

    def families(self) -> Iterator[Metric]:
        with self._lock:
            requests = dict(self._requests)
            buckets = {key: list(counts) for key, counts in self._buckets.items()}
            sums = dict(self._sums)
        total = CounterMetricFamily(
            "istio_requests_total", "Requests by destination.", labels=_REQUEST_LABELS
        )
        duration = HistogramMetricFamily(
            "istio_request_duration_milliseconds",
            "Request duration.",
            labels=[name for name in _REQUEST_LABELS],
        )
        for key, count in sorted(requests.items(), key=lambda item: repr(item[0])):
            labels = self._labels(key)
            total.add_metric(labels, count)
            cumulative = [
                (floatToGoString(edge), value)
                for edge, value in zip(DURATION_BUCKETS_MS, buckets[key], strict=True)
            ]
            duration.add_metric(labels, [*cumulative, ("+Inf", count)], sums[key])
        yield total
        yield duration

    def _labels(self, key: _Key) -> list[str]:
        workload = f"{key.service}-{key.version}"
        return [
            key.reporter,
            "istio-ingressgateway",
            "istio-system",
            workload,
            self.namespace,
            f"{key.service}.{self.namespace}.svc.cluster.local",
            key.service,
            key.version,
            key.service,
            "http",
            str(key.code),
            "-",
            "mutual_tls",
        ]


@dataclass(frozen=True, eq=False)  # the registry keys collectors by identity
class _Collector:
    exporter: IstioExporter

    def collect(self) -> Iterator[Metric]:
        yield from self.exporter.families()
