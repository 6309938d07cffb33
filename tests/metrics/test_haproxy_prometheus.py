"""HAProxy's built-in Prometheus exporter, scraped by a real Prometheus, read by
`metrics: {type: prometheus}` with the queries docs/haproxy.md gives: each version's
answers through a real HAProxy in front of two real model servers."""

from __future__ import annotations

from collections import Counter

import pytest

from gray.controller.metrics import build_metrics
from gray.controller.plan.loading import parse_plan
from gray.controller.routers import build_router
from gray.controller.types import Lease, Pair, RouteSpec
from tests.haproxy_server import ModelsBehindHaproxy
from tests.prometheus_server import RunningPrometheus

pytestmark = pytest.mark.slow

# The metrics block as docs/haproxy.md gives it; the router block as in every HAProxy plan.
PLAN = """\
name: fraud
model: {{name: {model}, baseline: "1", candidate: "2"}}
gates:
  - {{metric: error_rate, max_increase: 10%}}
  - {{metric: bad_request_rate, max_increase: 10%}}
stages:
  - {{weight: 50%, dwell: 5m}}
router:
  type: haproxy
  runtime_api: {runtime_api}
  backend: {backend}
  servers: {{baseline: {baseline}, candidate: {candidate}}}
  lease_map: {lease_map}
metrics:
  type: prometheus
  url: {prometheus}
  selector: {{proxy: {backend}}}
  version_label: server
  version_value: "{model}-v{{version}}"
  queries:
    requests: haproxy_server_http_responses_total
    errors: haproxy_server_http_responses_total{{code="5xx"}}
    bad_requests: haproxy_server_http_responses_total{{code="4xx"}}
"""
BAD_BODY = {"dataframe_split": {"columns": ["nonsense"], "data": [["not a number"]]}}


def test_prometheus_reads_each_version_from_haproxys_exporter(
    models_behind_haproxy: ModelsBehindHaproxy, prometheus_server: RunningPrometheus
) -> None:
    models, proxy = models_behind_haproxy, models_behind_haproxy.proxy
    proxy.reset()
    text = PLAN.format(
        model="fraud",
        runtime_api=proxy.runtime_unix,
        backend=proxy.backend,
        baseline=proxy.roles["baseline"],
        candidate=proxy.roles["candidate"],
        lease_map=proxy.lease_map,
        prometheus=prometheus_server.url,
    )
    plan = parse_plan(text, "haproxy-prometheus.yaml")
    pair = Pair(models.versions["baseline"], models.versions["candidate"])
    assert proxy.roles["candidate"] == f"fraud-v{pair.candidate}"
    build_router(plan.router).apply(
        RouteSpec(pair.baseline, pair.candidate, weight=0.5), Lease("p1", 1), ttl=None
    )
    source = build_metrics(plan.metrics, plan)
    prometheus_server.set_targets({"haproxy": [f"127.0.0.1:{proxy.exporter_port}"]})
    prometheus_server.wait_scraped()
    before = source.snapshot(pair)

    answered = Counter(models.send(f"p{n}" for n in range(40)).values())
    bad = Counter(models.send((f"q{n}" for n in range(6)), body=BAD_BODY).values())
    prometheus_server.wait_scraped()
    grown = source.snapshot(pair).minus(before)

    assert set(bad) == {"400"} and answered[pair.candidate] > 0
    assert grown.baseline.requests + grown.candidate.requests == 46
    assert grown.baseline.bad_requests + grown.candidate.bad_requests == 6
    assert grown.candidate.requests - grown.candidate.bad_requests == answered[pair.candidate]
    assert grown.baseline.requests - grown.baseline.bad_requests == answered[pair.baseline]
    assert grown.baseline.errors == grown.candidate.errors == 0
