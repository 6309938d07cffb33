"""GatewayRouter and GatewayMetrics against scripted answers: retries, waits, error mapping.

The real gateway covers the happy paths (test_real_gateway.py); these pin down what a
gateway that fails, stalls or restarts looks like to the controller.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gray.controller.errors import (
    LeaseConflictError,
    MetricsError,
    RouterError,
    VersionNotLoadedError,
)
from gray.controller.metrics.gateway import GatewayMetrics, slow_from_histogram
from gray.controller.routers.gateway import GatewayRouter
from gray.controller.types import Lease, Pair, RouteSpec

ROUTE = RouteSpec(baseline="1", candidate="2", weight=0.2)
LEASE = Lease("r1", 3)
APPLIED = {"route": ROUTE.to_dict(), "lease": LEASE.to_dict(), "loaded": {"1": "ready"}}


class Script:
    """Answers requests in order from a list of (method path, status, body) or exceptions."""

    def __init__(self, steps: list[Any]) -> None:
        self.steps = list(steps)
        self.seen: list[tuple[str, str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.seen.append((request.method, request.url.path, body))
        assert request.headers.get("authorization") == "Bearer tok"
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        expected, status, payload = step
        assert expected == f"{request.method} {request.url.path}", self.seen
        return httpx.Response(status, json=payload)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def router(script: Script, clock: Clock, **options: Any) -> GatewayRouter:
    return GatewayRouter(
        "http://gw:8080/",
        "tok",
        transport=httpx.MockTransport(script),
        sleep=clock.sleep,
        clock=clock,
        **options,
    )


def test_apply_sends_route_and_lease_and_reads_back_applied() -> None:
    script = Script([("PUT /admin/route", 200, APPLIED)])
    applied = router(script, Clock()).apply(ROUTE, LEASE)
    assert applied.route == ROUTE and applied.lease == LEASE
    # Candidate traffic without a ttl is held on purpose, and says so.
    assert script.seen[0][2] == {"route": ROUTE.to_dict(), "lease": LEASE.to_dict(), "hold": True}


def test_apply_retries_transport_errors_and_5xx_with_backoff() -> None:
    clock = Clock()
    script = Script(
        [
            httpx.ConnectError("refused"),
            ("PUT /admin/route", 503, {"error": "busy"}),
            ("PUT /admin/route", 200, APPLIED),
        ]
    )
    assert router(script, clock).apply(ROUTE, LEASE).route == ROUTE
    assert clock.sleeps == [0.5, 1.0]


def test_a_gateway_that_stays_down_is_a_router_error_after_bounded_retries() -> None:
    clock = Clock()
    script = Script([httpx.ConnectError("refused")] * 4)
    with pytest.raises(RouterError, match="after 4 attempts: ConnectError"):
        router(script, clock).read()
    assert len(script.seen) == 4


def test_a_lease_conflict_is_raised_at_once() -> None:
    conflict = {"error": "lease_conflict", "message": "epoch 3 is older", "lease": LEASE.to_dict()}
    script = Script([("PUT /admin/route", 409, conflict)])
    with pytest.raises(LeaseConflictError, match="epoch 3 is older"):
        router(script, Clock()).apply(ROUTE, LEASE)
    assert len(script.seen) == 1


def test_apply_waits_for_a_loading_version_then_writes_again() -> None:
    clock = Clock()
    not_ready = {"error": "version_not_ready", "versions": {"2": {"state": "loading"}}}
    script = Script(
        [
            ("PUT /admin/route", 409, not_ready),
            ("GET /admin/versions", 200, {"versions": {"2": {"state": "loading"}}}),
            ("GET /admin/versions", 200, {"versions": {"2": {"state": "ready"}}}),
            ("PUT /admin/route", 200, APPLIED),
        ]
    )
    assert router(script, clock).apply(ROUTE, LEASE).lease == LEASE
    assert clock.sleeps == [0.05]


def test_apply_gives_up_on_a_failed_or_slow_load() -> None:
    not_ready = {"error": "version_not_ready", "versions": {"2": {"state": "loading"}}}
    failed = {"versions": {"2": {"state": "failed", "reason": "no input example"}}}
    script = Script([("PUT /admin/route", 409, not_ready), ("GET /admin/versions", 200, failed)])
    with pytest.raises(VersionNotLoadedError, match="version 2: no input example"):
        router(script, Clock()).apply(ROUTE, LEASE)

    loading = ("GET /admin/versions", 200, {"versions": {"2": {"state": "loading"}}})
    script = Script([("PUT /admin/route", 409, not_ready)] + [loading] * 6)
    with pytest.raises(VersionNotLoadedError, match=r"did not load 2 \(loading\) within 1s"):
        router(script, Clock(), load_timeout=1.0).apply(ROUTE, LEASE)


def test_ensure_loaded_asks_again_when_the_version_vanished() -> None:
    clock = Clock()
    script = Script(
        [
            ("POST /admin/versions/2/load", 202, {"version": "2", "state": "loading"}),
            ("GET /admin/versions", 200, {"versions": {}}),
            ("POST /admin/versions/2/load", 202, {"version": "2", "state": "loading"}),
            ("GET /admin/versions", 200, {"versions": {"2": {"state": "ready"}}}),
            ("GET /admin/versions", 200, {"versions": {"2": {"state": "ready"}}}),
        ]
    )
    router(script, clock).ensure_loaded("2")
    assert [path for _, path, _ in script.seen].count("/admin/versions/2/load") == 2


@pytest.mark.parametrize(
    ("status", "payload", "message"),
    [
        (401, {"error": "unauthorized"}, "refused the admin token"),
        (422, {"detail": [{"msg": "weight too high"}]}, "HTTP 422"),
        (409, {"error": "version_in_use", "message": "routed"}, "HTTP 409: routed"),
    ],
)
def test_other_refusals_are_router_errors_with_the_reason(
    status: int, payload: dict[str, Any], message: str
) -> None:
    script = Script([("POST /admin/rollback", status, payload)])
    with pytest.raises(RouterError, match=message) as raised:
        router(script, Clock()).rollback(None)
    assert not isinstance(raised.value, LeaseConflictError)


def test_an_unreadable_answer_is_a_router_error() -> None:
    script = Script([("GET /admin/route", 200, {"route": "nonsense"})])
    with pytest.raises(RouterError, match="unreadable route"):
        router(script, Clock()).read()


# --- GatewayMetrics --------------------------------------------------------------------------


def counters(requests: int, buckets: list[list[Any]], **extra: Any) -> dict[str, Any]:
    return {"requests": requests, "latency_buckets": buckets, **extra}


def stats_body(started_at: float, requests: int, errors: int = 0) -> dict[str, Any]:
    buckets = [[0.1, requests // 2], [0.2, requests], ["+Inf", requests]]
    return {
        "taken_at": 100.0,
        "started_at": started_at,
        "versions": {
            "1": counters(requests, buckets, errors=errors, slow=[[0.2, 0]]),
        },
        "shadow": {"2": {"pairs": requests, "disagreements": 1}},
    }


def metrics(handler: Callable[[httpx.Request], httpx.Response], **options: Any) -> GatewayMetrics:
    return GatewayMetrics(
        "http://gw:8080",
        "tok",
        slo_edges=(0.14, 0.2),
        transport=httpx.MockTransport(handler),
        sleep=lambda _: None,
        **options,
    )


def test_a_version_the_gateway_has_not_counted_reads_as_zero() -> None:
    source = metrics(lambda _: httpx.Response(200, json=stats_body(1.0, 10)))
    snapshot = source.snapshot(Pair("1", "2"))
    assert snapshot.taken_at == 100.0
    assert snapshot.baseline.requests == 10
    assert snapshot.candidate.requests == 0
    assert snapshot.candidate.slow_over(0.14) == 0  # no data, but every edge is present
    assert snapshot.shadow.pairs == 10 and snapshot.shadow.disagreements == 1


def test_edges_the_gateway_does_not_count_are_read_off_the_histogram() -> None:
    snapshot = metrics(lambda _: httpx.Response(200, json=stats_body(1.0, 10))).snapshot(
        Pair("1", "2")
    )
    assert snapshot.baseline.slow_over(0.2) == 0  # the gateway's own count
    assert snapshot.baseline.slow_over(0.14) == 3  # 10 - (5 + 5 * 0.4)


def test_slow_from_histogram() -> None:
    buckets = ((0.1, 4), (0.2, 8), (float("inf"), 10))
    assert slow_from_histogram(buckets, 10, 0.1) == 6
    assert slow_from_histogram(buckets, 10, 0.05) == 8
    assert slow_from_histogram(buckets, 10, 5.0) == 2
    assert slow_from_histogram((), 0, 0.1) == 0


def test_a_broken_source_is_a_metrics_error_not_zero() -> None:
    attempts: list[int] = []

    def down(_: httpx.Request) -> httpx.Response:
        attempts.append(1)
        raise httpx.ConnectError("refused")

    with pytest.raises(MetricsError, match="ConnectError"):
        metrics(down).snapshot(Pair("1", "2"))
    assert len(attempts) == 3
    for response in (
        httpx.Response(500, text="boom"),
        httpx.Response(401, json={}),
        httpx.Response(200, text="not json"),
        httpx.Response(200, json=[1]),
        httpx.Response(200, json={"versions": {}}),  # no taken_at
    ):
        with pytest.raises(MetricsError):
            metrics(lambda _, r=response: r).snapshot(Pair("1", "2"))


def test_counters_keep_growing_across_a_gateway_restart() -> None:
    answers = [stats_body(1.0, 10, errors=1), stats_body(1.0, 30, errors=2), stats_body(2.0, 4)]
    source = metrics(lambda _: httpx.Response(200, json=answers.pop(0)))
    pair = Pair("1", "2")
    first, second, after_restart = (source.snapshot(pair) for _ in range(3))
    assert [s.baseline.requests for s in (first, second, after_restart)] == [10, 30, 34]
    assert after_restart.baseline.errors == 2
    assert after_restart.shadow.pairs == 34
    grown = after_restart.minus(second)
    assert grown.baseline.requests == 4
    assert all(count >= 0 for _, count in grown.baseline.latency_buckets)
    assert all(count >= 0 for _, count in grown.baseline.slow)


def test_a_401_without_a_token_says_no_token_is_set() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": "unauthorized", "message": "send a token"})

    transport = httpx.MockTransport(refuse)
    with pytest.raises(RouterError, match="needs an admin token and none is set"):
        GatewayRouter("http://gw:8080", None, transport=transport).read()
    with pytest.raises(MetricsError, match="needs an admin token and none is set"):
        GatewayMetrics("http://gw:8080", "", transport=transport).snapshot(Pair("1", "2"))
    with pytest.raises(RouterError, match=r"refused the admin token \(HTTP 401\)"):
        GatewayRouter("http://gw:8080", "wrong", transport=transport).read()
