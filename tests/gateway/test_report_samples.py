"""The report's sample of disagreeing mirrored pairs, read from a running gateway's
`/admin/samples` through the router's client."""

from __future__ import annotations

from typing import Any

import pytest

from gray.controller.errors import RouterError
from gray.controller.plan.loading import parse_plan
from gray.controller.report.samples import from_gateway, pick
from gray.controller.routers.gateway import GatewayRouter

from .helpers import ADMIN, TOKEN, put_route, route, row, split_body, wait_until

PLAN = """\
name: mirrored
model: {{name: tiny, baseline: "1", candidate: "2"}}
router: {{type: gateway, url: "{url}", token: "{token}"}}
gates: [{{metric: error_rate, max_increase: 10%}}]
stages: [{{mirror: 100%, dwell: 1m, gates: [{{metric: disagreement, max: 5%}}]}}]
"""


def test_the_report_reads_the_candidates_disagreeing_pairs(make_client: Any) -> None:
    with make_client() as client:
        put_route(client, route(candidate="2", mirror=1.0))  # v2 answers half of v1
        for amount in (0.0, 12.0, 15.0):
            assert client.post("/invocations", json=split_body(row(amount=amount))).is_success

        def pairs() -> int:
            shadow = client.get("/admin/stats", headers=ADMIN).json()["shadow"]
            return int(shadow.get("2", {}).get("pairs", 0))

        wait_until(lambda: pairs() == 3)
        # The router's client, on the app in this process rather than a socket.
        router = GatewayRouter("http://testserver", TOKEN, transport=client._transport)
        found = pick(router.samples("shadow", "2", 1000))
        assert len(found.pairs) == 2  # amount 0 is 0 on both: they agree
        assert all(p["candidate"]["version"] == "2" for p in found.pairs)
        assert "the newest 2 of 2 disagreeing pairs among the 3 mirrored pairs" in found.note
        assert router.samples("shadow", "5", 1000) == []  # a version never mirrored

        # As the report asks: every replica the plan names, with the plan's token.
        plan = parse_plan(
            PLAN.format(url="http://testserver", token=TOKEN), "plan.yaml", environ={}
        )
        asked = from_gateway(plan, "2", transport=client._transport)
        assert [p["request_id"] for p in asked.pairs] == [p["request_id"] for p in found.pairs]

        refused = GatewayRouter(
            "http://testserver", "wrong", retries=0, transport=client._transport
        )
        with pytest.raises(RouterError, match="refused the admin token"):
            refused.samples("shadow", "2", 10)
