"""The plan's `router:` and `metrics:` blocks: today's plans parse unchanged, and a bad
field or an unknown type is a problem at file:line:col, worded like every plan problem."""

from __future__ import annotations

import pytest

from gray.controller.errors import PlanError
from gray.controller.plan.loading import parse_plan
from gray.controller.plugins import METRICS_TYPES, ROUTER_TYPES

ROUTERS = ", ".join(ROUTER_TYPES.names())  # gray's own, in the order plugins.py lists them
METRICS = ", ".join(METRICS_TYPES.names())

VALID = """\
name: fraud
model:
  name: fraud
  baseline: "@champion"
  candidate: "@challenger"
interval: 30s
gates:
  - {metric: error_rate, max_increase: 10%}
stages:
  - {weight: 5%, dwell: 5m}
  - {weight: 50%, dwell: 5m}
"""

# (the blocks added to VALID, every problem as `gray plan validate` renders it)
BROKEN: list[tuple[str, list[str]]] = [
    (
        "router: {type: gateway, url: 'http://x', tokn: a}\n",
        ["p.yaml:12:42: router.tokn: unknown field 'tokn'; did you mean 'token'?"],
    ),
    (
        "router: {timeout: 0s}\n",
        ["p.yaml:12:19: router.timeout: expected a duration from 100ms to 5m, got '0s'"],
    ),
    (
        "router: {type: linkerd}\n",
        [f"p.yaml:12:16: router.type: expected one of {ROUTERS}, got 'linkerd'"],
    ),
    ("router: {type: 5}\n", [f"p.yaml:12:16: router.type: expected one of {ROUTERS}, got 5"]),
    ("router: {type: [1]}\n", [f"p.yaml:12:16: router.type: expected one of {ROUTERS}"]),
    (
        "router: {type: gatewey}\n",
        [
            f"p.yaml:12:16: router.type: expected one of {ROUTERS}, got 'gatewey'; "
            "did you mean 'gateway'?"
        ],
    ),
    ("router: 5\n", ["p.yaml:12:9: router: expected a mapping of fields, got 5"]),
    (
        "router: {lease_ttl: 10s}\n",
        [
            "p.yaml:12:21: router.lease_ttl: lease_ttl must be longer than the interval (30s): "
            "the controller renews the lease once per look"
        ],
    ),
    (
        "router:\n  type: gateway\n  lease_ttl: 1y2\n",
        [
            "p.yaml:14:14: router.lease_ttl: expected a duration such as 500ms, 30s, 5m or "
            "1h30m, got '1y2'"
        ],
    ),
    (
        "metrics: {type: gateway, urll: x}\n",
        ["p.yaml:12:26: metrics.urll: unknown field 'urll'; did you mean 'url'?"],
    ),
    (
        "metrics: {type: prom}\n",
        [f"p.yaml:12:17: metrics.type: expected one of {METRICS}, got 'prom'"],
    ),
    ("metrics: {token: 5}\n", ["p.yaml:12:18: metrics.token: expected text, got 5"]),
    (
        "router: {type: gateway, tokn: a}\nmetrics: {type: prom}\n",
        [
            "p.yaml:12:25: router.tokn: unknown field 'tokn'; did you mean 'token'?",
            f"p.yaml:13:17: metrics.type: expected one of {METRICS}, got 'prom'",
        ],
    ),
]


@pytest.mark.parametrize(("blocks", "expected"), BROKEN, ids=[b for b, _ in BROKEN])
def test_a_bad_block_is_a_problem_at_its_position(blocks: str, expected: list[str]) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan(VALID + blocks, "p.yaml")
    assert [problem.render() for problem in caught.value.problems] == expected


def test_todays_gateway_blocks_parse_unchanged() -> None:
    plan = parse_plan(
        VALID + "router: {type: gateway, url: 'http://10.0.0.1:8080', token: t, timeout: 2s}\n"
        "metrics: {type: gateway}\n",
        "p.yaml",
    )
    assert plan.router.type == "gateway"
    assert (plan.router.url, plan.router.token, plan.router.timeout) == (
        "http://10.0.0.1:8080",
        "t",
        2.0,
    )
    assert (plan.metrics.type, plan.metrics.url, plan.metrics.token) == ("gateway", None, None)


def test_blocks_left_out_are_the_local_gateway() -> None:
    plan = parse_plan(VALID, "p.yaml")
    assert (plan.router.type, plan.router.url, plan.router.timeout) == (
        "gateway",
        "http://127.0.0.1:8080",
        10.0,
    )
    assert plan.router.lease_ttl is None
    assert plan.metrics.type == "gateway"


def test_a_block_without_type_is_a_gateway() -> None:
    plan = parse_plan(VALID + "router: {url: 'http://h:1'}\nmetrics: {url: 'http://m:2'}\n")
    assert (plan.router.type, plan.router.url) == ("gateway", "http://h:1")
    assert (plan.metrics.type, plan.metrics.url) == ("gateway", "http://m:2")
