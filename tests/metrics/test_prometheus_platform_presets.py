"""The `kserve` and `seldon` presets against a real Prometheus scraping the series those
platforms export: Knative's queue-proxy beside KServe's predictors
(`revision_app_request_count`, `revision_app_request_latencies`, in milliseconds), and
Seldon Core 2's agent (`seldon_model_infer_total`, its `code` an HTTP status for REST
calls and a gRPC status name for gRPC ones). Each platform's page is served as text by
a small HTTP server, with the names and labels the platforms use."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gray.controller.errors import PlanError
from gray.controller.metrics.prometheus import PrometheusMetrics, PrometheusMetricsSpec
from gray.controller.metrics.prometheus.promql import PrometheusClient
from gray.controller.plan.loading import parse_plan
from gray.controller.types import Pair, Snapshot
from tests.prometheus_server import RunningPrometheus

PAIR = Pair(baseline="6", candidate="7")
SETTLE_SECONDS = 8.0
# Knative's default latency buckets (milliseconds), the first of them.
KNATIVE_BUCKETS_MS = (5, 10, 20, 40, 60, 80, 100, 150, 200, 250, 300, 500, 1000, 5000)


class Page:
    """Serves `/metrics` with whatever exposition text `text` holds now."""

    def __init__(self) -> None:
        self.text = ""
        page = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = page.text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def knative_page(revisions: dict[tuple[str, str], dict[int, list[float]]]) -> str:
    """Queue-proxy series: per (revision, version label) the latencies (ms) of the
    requests answered with each status code."""
    lines = [
        "# TYPE revision_app_request_count counter",
        "# TYPE revision_app_request_latencies histogram",
    ]
    for (revision, version), answers in revisions.items():
        for code, latencies in answers.items():
            labels = (
                f'configuration_name="fraud-predictor",container_name="queue-proxy",'
                f'namespace_name="models",pod_name="{revision}-deployment-abc",'
                f'response_code="{code}",response_code_class="{code // 100}xx",'
                f'revision_name="{revision}",service_name="fraud-predictor",'
                f'version="{version}"'
            )
            lines.append(f"revision_app_request_count{{{labels}}} {len(latencies)}")
            for edge in KNATIVE_BUCKETS_MS:
                within = sum(1 for ms in latencies if ms <= edge)
                lines.append(
                    f'revision_app_request_latencies_bucket{{{labels},le="{edge}"}} {within}'
                )
            lines.append(
                f'revision_app_request_latencies_bucket{{{labels},le="+Inf"}} {len(latencies)}'
            )
            lines.append(f"revision_app_request_latencies_sum{{{labels}}} {sum(latencies)}")
            lines.append(f"revision_app_request_latencies_count{{{labels}}} {len(latencies)}")
    return "\n".join(lines) + "\n"


def seldon_page(models: dict[tuple[str, str, str], int]) -> str:
    """The agent's per-model counter: calls per (model, method type, code)."""
    lines = ["# TYPE seldon_model_infer_total counter"]
    for (model, method, code), calls in models.items():
        labels = (
            f'code="{code}",method_type="{method}",model="{model}",'
            f'model_internal="{model}_1",server="mlserver",server_replica="0"'
        )
        lines.append(f"seldon_model_infer_total{{{labels}}} {calls}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def pages(prometheus_server: RunningPrometheus) -> Iterator[dict[str, Page]]:
    served = {"kserve": Page(), "seldon": Page()}
    prometheus_server.set_targets({name: [page.host] for name, page in served.items()})
    yield served
    prometheus_server.set_targets({})
    for page in served.values():
        page.close()


def settle(metrics: PrometheusMetrics, check: dict[str, tuple[int, int, int]]) -> Snapshot:
    """The snapshot once (requests, errors, bad requests) per role reads `check`."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        snapshot = metrics.snapshot(PAIR)
        seen = {
            role: (c.requests, c.errors, c.bad_requests)
            for role, c in (("baseline", snapshot.baseline), ("candidate", snapshot.candidate))
        }
        if seen == check or time.monotonic() > deadline:
            assert seen == check
            return snapshot
        time.sleep(0.25)


def source(prometheus_server: RunningPrometheus, **block: object) -> PrometheusMetrics:
    spec = PrometheusMetricsSpec(url=prometheus_server.url, **block)  # type: ignore[arg-type]
    return PrometheusMetrics(PrometheusClient(spec.url), spec.layout(), slo_edges=(0.1,))


@pytest.mark.slow
def test_the_kserve_preset_reads_each_revision_by_its_version_label(
    pages: dict[str, Page], prometheus_server: RunningPrometheus
) -> None:
    pages["kserve"].text = knative_page(
        {
            ("fraud-predictor-00006", "6"): {200: [12.0] * 50, 503: [30.0] * 2, 400: [3.0]},
            ("fraud-predictor-00007", "7"): {200: [70.0] * 20 + [180.0] * 10, 500: [400.0] * 4},
        }
    )
    metrics = source(prometheus_server, preset="kserve", selector={"namespace_name": "models"})
    snapshot = settle(metrics, {"baseline": (53, 2, 1), "candidate": (34, 4, 0)})
    assert snapshot.candidate.slow_over(0.1) == 14  # 10 at 180 ms and 4 at 400 ms
    buckets = dict(snapshot.candidate.latency_buckets)  # milliseconds read as seconds
    assert (buckets[0.08], buckets[0.2], buckets[float("inf")]) == (20, 30, 34)


@pytest.mark.slow
def test_the_seldon_preset_reads_each_model_as_a_version_over_rest_and_grpc(
    pages: dict[str, Page], prometheus_server: RunningPrometheus
) -> None:
    pages["seldon"].text = seldon_page(
        {
            ("fraud-v6", "rest", "200"): 90,
            ("fraud-v6", "rest", "500"): 3,
            ("fraud-v6", "grpc", "OK"): 10,
            ("fraud-v6", "grpc", "InvalidArgument"): 2,
            ("fraud-v7", "rest", "200"): 40,
            ("fraud-v7", "rest", "422"): 1,
            ("fraud-v7", "grpc", "Internal"): 5,
            ("iris-v7", "rest", "500"): 50,  # another model: not counted
        }
    )
    metrics = source(prometheus_server, preset="seldon", version_value="fraud-v{version}")
    settle(metrics, {"baseline": (105, 3, 2), "candidate": (46, 5, 1)})


PLAN = """\
name: fraud
model: {{name: fraud, baseline: "@champion", candidate: "@challenger"}}
interval: 30s
gates:
  - {gate}
stages:
  - {{weight: 5%, dwell: 5m}}
metrics: {{type: prometheus, url: "http://prometheus:9090", preset: {preset}}}
"""


@pytest.mark.parametrize(
    ("preset", "gate", "reason"),
    [
        ("kserve", "{metric: accuracy, max_decrease: 1%}", "it reads correct, labelled"),
        ("seldon", "{metric: latency, slo: 250ms, max_increase: 20%}", "latency_buckets"),
    ],
)
def test_a_gate_a_preset_cannot_feed_is_refused_at_the_gate(
    preset: str, gate: str, reason: str
) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan(PLAN.format(gate=gate, preset=preset), "p.yaml")
    [problem] = caught.value.problems
    assert (problem.line, problem.field) == (5, "gates[0].metric")
    assert f"the {preset} preset's series do not count them" in problem.message
    assert reason in problem.message


@pytest.mark.parametrize(
    ("preset", "gate"),
    [
        ("kserve", "{metric: latency, slo: 250ms, max_increase: 20%}"),
        ("seldon", "{metric: bad_request_rate, max_increase: 20%}"),
    ],
)
def test_the_gates_a_preset_feeds_are_accepted(preset: str, gate: str) -> None:
    assert parse_plan(PLAN.format(gate=gate, preset=preset), "p.yaml").metrics.type == "prometheus"
