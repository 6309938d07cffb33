"""The real gateway: a subprocess on a loopback port serving demo models from a sqlite registry.

Clients are MLflow's own scoring client, plain HTTP, and gray's router and metrics adapters.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from gray.controller.errors import LeaseConflictError, VersionNotLoadedError
from gray.controller.metrics.gateway import GatewayMetrics
from gray.controller.routers.gateway import GatewayRouter
from gray.controller.types import (
    ROUTING_GROUPS,
    Applied,
    Audience,
    Lease,
    Pair,
    RouteSpec,
)
from gray.gateway.routing import group_of
from gray.gateway.samples import read_samples
from gray.gateway.testing import RunningGateway, start_gateway

pytestmark = pytest.mark.slow

TOKEN = "real-gateway-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
SLO_EDGES = (0.01, 0.25)


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    from gray.demo.models import demo_dataset

    return demo_dataset()[0]


@pytest.fixture(scope="module")
def labels() -> pd.Series:
    from gray.demo.models import demo_dataset

    return demo_dataset()[1]


@pytest.fixture(scope="module")
def gateway(
    demo_registry: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    running = start_gateway(
        demo_registry.uri,
        demo_registry.model_name,
        tmp_path_factory.mktemp("gateway"),
        token=TOKEN,
        slo_edges=SLO_EDGES,
        extra_args=["--override-cidr", "10.9.0.0/16"],
    )
    yield running
    running.stop()


@pytest.fixture
def router(gateway: RunningGateway) -> Iterator[GatewayRouter]:
    with GatewayRouter(gateway.url, TOKEN, load_timeout=120) as adapter:
        yield adapter


@pytest.fixture
def client(gateway: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        yield http


def take_over(router: GatewayRouter, route: RouteSpec) -> Applied:
    """Write `route` under an epoch above whatever an earlier test left in force."""
    current = router.read().lease
    return router.apply(route, Lease("tests", (current.epoch if current else 0) + 1))


def body_of(frame: pd.DataFrame) -> dict[str, Any]:
    return {"dataframe_split": json.loads(frame.to_json(orient="split"))}


def ask(client: httpx.Client, frame: pd.DataFrame | bytes, **headers: str) -> httpx.Response:
    """POST one frame (or a body already encoded with `encoded`)."""
    body = frame if isinstance(frame, bytes) else encoded(frame)
    return client.post(
        "/invocations", content=body, headers={"Content-Type": "application/json", **headers}
    )


def encoded(frame: pd.DataFrame) -> bytes:
    return json.dumps(body_of(frame)).encode()


def test_mlflow_scoring_client_works_unchanged(
    gateway: RunningGateway, demo_registry: Any, features: pd.DataFrame
) -> None:
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    from gray.demo.models import train_demo_models

    scoring = ScoringServerClient("127.0.0.1", gateway.port)
    scoring.wait_server_ready(timeout=30)
    assert scoring.get_version()
    rows = features.iloc[:40]
    answer = scoring.invoke(rows)
    expected = train_demo_models().predict("baseline", rows)
    assert list(answer.get_predictions(predictions_format="ndarray")) == list(expected)


def test_every_version_applies_its_own_preprocessor_exactly_as_at_training(
    gateway: RunningGateway,
    client: httpx.Client,
    demo_registry: Any,
    features: pd.DataFrame,
) -> None:
    from gray.demo.models import train_demo_models

    demo = train_demo_models()
    rows = features.iloc[::3].reset_index(drop=True)
    for role in ("good", "bad_preprocessor"):
        version = demo_registry.versions[role]
        response = ask(client, rows, **{"X-Model-Version": version, **ADMIN})
        if response.status_code == 404:  # not loaded yet: load it, as an operator would
            with GatewayRouter(gateway.url, TOKEN) as adapter:
                adapter.ensure_loaded(version)
            response = ask(client, rows, **{"X-Model-Version": version, **ADMIN})
        assert response.status_code == 200, response.text
        assert response.headers["X-Model-Version"] == version
        assert response.json()["predictions"] == list(demo.predict(role, rows))
    # The wrong scaler really changes answers, so the check above is not vacuous.
    assert list(demo.predict("good", rows)) != list(demo.predict("bad_preprocessor", rows))


def test_every_scoring_format_gets_the_same_answer(
    client: httpx.Client, features: pd.DataFrame
) -> None:
    rows = features.iloc[100:105]
    records = json.loads(rows.to_json(orient="records"))
    bodies = [
        body_of(rows),
        {"dataframe_records": records},
        {"instances": records},
        {"inputs": {c: rows[c].tolist() for c in rows.columns}},
    ]
    answers = [client.post("/invocations", json=b).json()["predictions"] for b in bodies]
    csv = client.post(
        "/invocations", content=rows.to_csv(index=False), headers={"Content-Type": "text/csv"}
    )
    assert all(answer == answers[0] for answer in answers)
    assert csv.json()["predictions"] == answers[0]


def test_split_proportions_stickiness_and_monotone_ramp(
    router: GatewayRouter, client: httpx.Client, demo_registry: Any, features: pd.DataFrame
) -> None:
    baseline, good = demo_registry.versions["baseline"], demo_registry.versions["good"]
    take_over(router, RouteSpec(baseline=baseline, candidate=good, weight=0.2))
    row = encoded(features.iloc[[7]])
    keys = [f"user-{i}" for i in range(2000)]
    seen = {k: ask(client, row, **{"X-User-Id": k}).headers["X-Model-Version"] for k in keys}
    hits = sum(v == good for v in seen.values())
    sd = math.sqrt(len(keys) * 0.2 * 0.8)
    assert abs(hits - 400) < 5 * sd, hits
    for key in keys[:200]:
        assert ask(client, row, **{"X-User-Id": key}).headers["X-Model-Version"] == seen[key]
    take_over(router, RouteSpec(baseline=baseline, candidate=good, weight=0.5))
    for key in [k for k, v in seen.items() if v == good][:100]:
        assert ask(client, row, **{"X-User-Id": key}).headers["X-Model-Version"] == good


def test_audience_limits_the_candidate_to_listed_networks(
    router: GatewayRouter, client: httpx.Client, demo_registry: Any, features: pd.DataFrame
) -> None:
    baseline, good = demo_registry.versions["baseline"], demo_registry.versions["good"]
    take_over(
        router,
        RouteSpec(
            baseline=baseline, candidate=good, weight=1.0, audience=Audience(cidr=("10.0.0.0/8",))
        ),
    )
    row = features.iloc[[3]]
    # The gateway trusts X-Forwarded-For from 127.0.0.1 (its --forwarded-allow-ips).
    assert ask(client, row, **{"X-Forwarded-For": "10.1.2.3"}).headers["X-Model-Version"] == good
    assert ask(client, row, **{"X-Forwarded-For": "192.0.2.1"}).headers["X-Model-Version"] == (
        baseline
    )
    assert ask(client, row).headers["X-Model-Version"] == baseline


def test_forcing_a_version_needs_permission(
    router: GatewayRouter, client: httpx.Client, demo_registry: Any, features: pd.DataFrame
) -> None:
    baseline, good = demo_registry.versions["baseline"], demo_registry.versions["good"]
    take_over(router, RouteSpec(baseline=baseline, candidate=good, weight=0.0))
    router.ensure_loaded(good)
    row = features.iloc[[3]]
    before = client.get("/admin/stats", headers=ADMIN).json()["ignored_overrides"]
    assert ask(client, row, **{"X-Model-Version": good, **ADMIN}).headers["X-Model-Version"] == good
    via_network = ask(client, row, **{"X-Model-Version": good, "X-Forwarded-For": "10.9.4.4"})
    assert via_network.headers["X-Model-Version"] == good
    refused = ask(client, row, **{"X-Model-Version": good, "X-Forwarded-For": "10.8.4.4"})
    assert refused.headers["X-Model-Version"] == baseline
    assert ask(client, row, **{"X-Model-Version": good}).headers["X-Model-Version"] == baseline
    after = client.get("/admin/stats", headers=ADMIN).json()["ignored_overrides"]
    assert after - before == 2


def test_mirroring_a_failing_candidate_never_changes_an_answer(
    router: GatewayRouter, client: httpx.Client, demo_registry: Any, features: pd.DataFrame
) -> None:
    baseline, raises = demo_registry.versions["baseline"], demo_registry.versions["bad_raises"]
    rows = [features.iloc[[i]] for i in range(0, 569, 5)]
    take_over(router, RouteSpec(baseline=baseline))
    plain = [ask(client, r).json() for r in rows]
    metrics = GatewayMetrics(client.base_url.__str__(), TOKEN)
    before = metrics.snapshot(Pair(baseline, raises))
    take_over(router, RouteSpec(baseline=baseline, candidate=raises, mirror=1.0))
    mirrored = [ask(client, r) for r in rows]
    assert [m.status_code for m in mirrored] == [200] * len(rows)
    assert [m.json() for m in mirrored] == plain
    assert {m.headers["X-Model-Version"] for m in mirrored} == {baseline}

    def shadow_seen() -> int:
        shadow = metrics.snapshot(Pair(baseline, raises)).minus(before).shadow
        return shadow.pairs + shadow.candidate.errors

    deadline = time.monotonic() + 30
    while shadow_seen() < len(rows) and time.monotonic() < deadline:
        time.sleep(0.1)
    shadow = metrics.snapshot(Pair(baseline, raises)).minus(before).shadow
    assert shadow.candidate.errors > 0  # the guarded model refused the large tumours
    assert shadow.pairs + shadow.candidate.errors == len(rows)
    assert shadow.baseline.requests == len(rows)


def test_mirroring_a_slow_candidate_adds_no_latency(
    router: GatewayRouter, client: httpx.Client, demo_registry: Any, features: pd.DataFrame
) -> None:
    from gray.demo.models import SLOW_PREDICT_SECONDS

    baseline, slow = demo_registry.versions["baseline"], demo_registry.versions["bad_slow"]
    take_over(router, RouteSpec(baseline=baseline, candidate=slow, mirror=1.0))
    row = features.iloc[[11]]
    latencies = []
    for _ in range(40):
        started = time.perf_counter()
        assert ask(client, row).headers["X-Model-Version"] == baseline
        latencies.append(time.perf_counter() - started)
    # Were the candidate on the response path, every answer would take at least its delay.
    assert statistics.median(latencies) < SLOW_PREDICT_SECONDS


def test_a_raising_candidate_is_a_5xx_counted_against_it(
    router: GatewayRouter, client: httpx.Client, demo_registry: Any, features: pd.DataFrame
) -> None:
    baseline, raises = demo_registry.versions["baseline"], demo_registry.versions["bad_raises"]
    take_over(router, RouteSpec(baseline=baseline, candidate=raises, weight=1.0))
    metrics = GatewayMetrics(str(client.base_url), TOKEN, slo_edges=SLO_EDGES)
    before = metrics.snapshot(Pair(baseline, raises))
    statuses = [ask(client, features.iloc[[i]]).status_code for i in range(0, 569, 3)]
    assert set(statuses) == {200, 500}
    grown = metrics.snapshot(Pair(baseline, raises)).minus(before)
    assert grown.candidate.requests == len(statuses)
    assert grown.candidate.errors == statuses.count(500)
    assert grown.baseline.requests == 0
    assert grown.candidate.slow_over(0.25) is not None
    # Failures are replayed on the baseline after the answer; the source passes the counts on.
    assert grown.candidate.replayed_failures > 0
    # Without a routing header the key is the client's address: one key, so one group.
    groups = grown.candidate.groups
    assert groups is not None and grown.baseline.groups is not None
    assert not any(grown.baseline.groups.requests)
    only = group_of("127.0.0.1")
    assert groups.requests[only] == len(statuses) and sum(groups.requests) == len(statuses)
    assert groups.errors[only] == statuses.count(500) and sum(groups.errors) == groups.errors[only]


def test_error_paths_over_http(
    router: GatewayRouter, client: httpx.Client, demo_registry: Any, features: pd.DataFrame
) -> None:
    baseline = demo_registry.versions["baseline"]
    assert client.get("/admin/route").status_code == 401
    assert client.get("/admin/route", headers={"Authorization": "Bearer nope"}).status_code == 401
    bad = client.put(
        "/admin/route", json={"route": {"baseline": baseline, "weight": 2}}, headers=ADMIN
    )
    assert bad.status_code == 422
    applied = take_over(router, RouteSpec(baseline=baseline))
    assert applied.lease is not None
    stale = client.put(
        "/admin/route",
        json={
            "route": RouteSpec(baseline=baseline).to_dict(),
            "lease": {"rollout_id": "old", "epoch": applied.lease.epoch - 1},
        },
        headers=ADMIN,
    )
    assert stale.status_code == 409 and stale.json()["error"] == "lease_conflict"
    wrong = client.post("/invocations", json={"inputs": {"mean_radius": ["big"]}})
    assert wrong.status_code == 400 and wrong.json()["error_code"] == "BAD_REQUEST"
    typo = features.iloc[[0]].rename(columns={"mean_radius": "mean_radios"})
    assert ask(client, typo).status_code == 400
    assert client.get("/ping").status_code == 200


def test_router_adapter_against_the_real_gateway(router: GatewayRouter, demo_registry: Any) -> None:
    baseline, good = demo_registry.versions["baseline"], demo_registry.versions["good"]
    slow = demo_registry.versions["bad_slow"]
    current = router.read().lease
    epoch = (current.epoch if current else 0) + 1
    if slow in router.versions():
        router.unload(slow)
    # The route names a version that is not loaded: apply loads it, waits, and writes.
    spec = RouteSpec(baseline=baseline, candidate=slow, weight=0.1, mirror=0.2)
    applied = router.apply(spec, Lease("rollout-a", epoch))
    assert applied == Applied(spec, Lease("rollout-a", epoch))
    assert router.read() == applied
    assert router.versions()[slow]["state"] == "ready"
    rolled = router.rollback(Lease("oncall", epoch))
    assert rolled.route == spec.rolled_back() and rolled.lease == Lease("oncall", epoch + 1)
    with pytest.raises(LeaseConflictError):
        router.apply(spec, Lease("rollout-a", epoch))
    with pytest.raises(VersionNotLoadedError, match="999"):
        router.ensure_loaded("999")
    router.ensure_loaded(good)
    assert router.versions()[good]["state"] == "ready"


def test_metrics_adapter_counts_what_was_sent(
    router: GatewayRouter,
    client: httpx.Client,
    demo_registry: Any,
    features: pd.DataFrame,
    labels: pd.Series,
) -> None:
    baseline, good = demo_registry.versions["baseline"], demo_registry.versions["good"]
    take_over(router, RouteSpec(baseline=baseline, candidate=good, weight=0.5))
    metrics = GatewayMetrics(str(client.base_url), TOKEN, slo_edges=(0.01, 0.1))
    pair = Pair(baseline, good)
    before = metrics.snapshot(pair)
    answered = {baseline: 0, good: 0}
    answered_keys = []
    feedback = []
    for i in range(0, 300):
        response = ask(client, features.iloc[[i]], **{"X-User-Id": f"m{i}"})
        answered[response.headers["X-Model-Version"]] += 1
        answered_keys.append((response.headers["X-Model-Version"], f"m{i}"))
        feedback.append({"request_id": response.headers["X-Request-Id"], "label": [int(labels[i])]})
    posted = client.post("/feedback", json={"labels": feedback}, headers=ADMIN).json()
    assert posted["accepted"] == 300
    grown = metrics.snapshot(pair).minus(before)
    assert grown.baseline.requests == answered[baseline]
    assert grown.candidate.requests == answered[good]
    assert grown.baseline.labelled + grown.candidate.labelled == 300
    for side in (grown.baseline, grown.candidate):
        assert side.correct / side.labelled > 0.85
        assert side.slow_over(0.1) is not None and side.slow_over(0.01) is not None
        assert side.latency_buckets[-1][1] == side.requests
    assert grown.taken_at > before.taken_at
    # Per hash group of the routing key: each request in its key's group, labels with it.
    expected = {baseline: [0] * ROUTING_GROUPS, good: [0] * ROUTING_GROUPS}
    for version, key in answered_keys:
        expected[version][group_of(key)] += 1
    for version, side in ((baseline, grown.baseline), (good, grown.candidate)):
        groups = side.groups
        assert groups is not None
        assert list(groups.requests) == expected[version]
        assert list(groups.labelled) == expected[version]
        assert sum(groups.correct) == side.correct and sum(groups.errors) == side.errors == 0
        # Per group, slow requests are counted at the gateway's own SLO edges only.
        assert sum(groups.slow_over(0.01) or (-1,)) == side.slow_over(0.01)
        assert groups.slow_over(0.1) is None


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_metrics_page_passes_promtool(client: httpx.Client, features: pd.DataFrame) -> None:
    ask(client, features.iloc[[0]])
    page = client.get("/metrics", headers=ADMIN).text
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=page, capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_health_of_the_candidate(
    router: GatewayRouter, client: httpx.Client, demo_registry: Any, features: pd.DataFrame
) -> None:
    baseline, good = demo_registry.versions["baseline"], demo_registry.versions["good"]
    take_over(router, RouteSpec(baseline=baseline, candidate=good, weight=1.0))
    for i in range(20):
        ask(client, features.iloc[[i]])
    health = client.get("/health", params={"model": "candidate"}, headers=ADMIN).json()
    assert health["version"] == good and health["loaded"] is True
    assert health["requests"] >= 20 and health["error_rate"] == 0.0
    assert 0 < health["mean_latency_seconds"] <= health["p99_latency_seconds"] * 1.5 + 1e-3


def test_prediction_log_records_answers_and_mirrored_pairs(
    gateway: RunningGateway, client: httpx.Client
) -> None:
    client.get("/admin/stats", headers=ADMIN)  # earlier tests wrote plenty; give the writer a beat
    time.sleep(1.0)
    predictions = read_samples(gateway.state_dir, count=50, kind="prediction")
    assert predictions
    record = predictions[-1]
    assert {"request_id", "time", "version", "input_hash", "output", "latency", "status"} <= set(
        record
    )
    shadows = read_samples(gateway.state_dir, count=50, kind="shadow")
    assert shadows
    assert {"baseline", "candidate", "agree"} <= set(shadows[-1])
    assert {"output", "latency", "version", "status"} <= set(shadows[-1]["candidate"])


def test_a_restarted_gateway_restores_the_split(
    demo_registry: Any, tmp_path: Path, features: pd.DataFrame
) -> None:
    baseline, good = demo_registry.versions["baseline"], demo_registry.versions["good"]
    spec = RouteSpec(baseline=baseline, candidate=good, weight=0.3, mirror=0.1)
    row = features.iloc[[5]]
    keys = [f"k{i}" for i in range(60)]

    def versions_for(url: str) -> list[str]:
        with httpx.Client(base_url=url, timeout=30) as http:
            return [ask(http, row, **{"X-User-Id": k}).headers["X-Model-Version"] for k in keys]

    first = start_gateway(demo_registry.uri, demo_registry.model_name, tmp_path / "gw", token=TOKEN)
    try:
        with GatewayRouter(first.url, TOKEN) as adapter:
            applied = adapter.apply(spec, Lease("r", 7))
        seen = versions_for(first.url)
    finally:
        first.stop()
    second = start_gateway(
        demo_registry.uri,
        demo_registry.model_name,
        tmp_path / "gw",
        token=TOKEN,
        extra_args=["--baseline", good],  # ignored: a saved route wins
    )
    try:
        with GatewayRouter(second.url, TOKEN) as adapter:
            assert adapter.read() == applied
            assert {v: d["state"] for v, d in adapter.versions().items()} == {
                baseline: "ready",
                good: "ready",
            }
        assert versions_for(second.url) == seen
    finally:
        second.stop()


def test_loading_and_unloading_thirty_times_does_not_grow_the_process(
    demo_registry: Any, tmp_path: Path
) -> None:
    good = demo_registry.versions["good"]
    running = start_gateway(
        demo_registry.uri, demo_registry.model_name, tmp_path / "gw", token=TOKEN
    )

    def rss_mb() -> float:
        status = Path(f"/proc/{running.process.pid}/status").read_text()
        kilobytes = next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")
        )
        return kilobytes / 1024

    try:
        with GatewayRouter(running.url, TOKEN) as adapter:
            for _ in range(3):  # first loads import libraries and fill caches
                adapter.ensure_loaded(good)
                adapter.unload(good)
            time.sleep(0.5)
            start = rss_mb()
            for _ in range(30):
                adapter.ensure_loaded(good)
                adapter.unload(good)
            time.sleep(0.5)
            grown = rss_mb() - start
        print(f"RSS {start:.1f} MB -> {start + grown:.1f} MB after 30 load/unload cycles")
        assert grown < 30, f"the process grew by {grown:.1f} MB"  # under 1 MB a cycle
    finally:
        running.stop()


def test_a_baseline_that_is_not_in_the_registry_stops_the_start(
    demo_registry: Any, tmp_path: Path
) -> None:
    from gray.controller.errors import GatewayError

    with pytest.raises(GatewayError, match="exited with 2") as failed:
        start_gateway(
            demo_registry.uri,
            demo_registry.model_name,
            tmp_path / "gw",
            token=TOKEN,
            extra_args=["--baseline", "@no-such-alias"],
        )
    assert "no alias @no-such-alias" in failed.value.message
