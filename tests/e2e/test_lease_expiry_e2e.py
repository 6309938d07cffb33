"""A controller killed mid-stage leaves no candidate traffic behind: the gateway's lease on it
runs out and the baseline answers everything again, with no controller involved."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from tests.metrics_text import sample

from .conftest import LONG_STAGES, TOKEN, Stack, read_events

pytestmark = pytest.mark.slow

LEASE_TTL_SECONDS = 3.0


def test_a_killed_controller_s_traffic_returns_to_the_baseline_within_the_lease_ttl(
    stack: Stack,
) -> None:
    plan = stack.plan("orphan", "challenger", LONG_STAGES)
    router = 'token: "${GRAY_GATEWAY_TOKEN}"}'
    text = plan.read_text()
    assert router in text
    plan.write_text(
        text.replace(
            router, f'token: "${{GRAY_GATEWAY_TOKEN}}", lease_ttl: {LEASE_TTL_SECONDS:g}s}}'
        )
    )
    controller = stack.spawn("rollout", "start", str(plan), "--output", "json")
    try:
        read_events(controller, "stage_started")
        # Alive, the controller renews at every look (1 s): the stage outlives one ttl.
        time.sleep(LEASE_TTL_SECONDS + 1.5)
        alive = stack.route()
        assert alive["route"]["weight"] == 0.3, alive
        assert alive["hold"] is False and 0 < alive["lease_seconds_left"] <= LEASE_TTL_SECONDS
        os.kill(controller.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        controller.wait(timeout=10)
        while stack.route()["route"]["weight"] != 0.0:
            assert time.monotonic() - killed_at < LEASE_TTL_SECONDS + 5, stack.route()
            time.sleep(0.05)
        back_after = time.monotonic() - killed_at
    finally:
        if controller.poll() is None:
            controller.kill()
            controller.wait(timeout=10)
    # The last renewal came before the kill, and expiries are checked every 0.1 s.
    assert back_after <= LEASE_TTL_SECONDS + 0.5, back_after
    seen = stack.route()
    assert seen["route"]["baseline"] == stack.versions["baseline"] and seen["route"]["mirror"] == 0
    assert seen["last_expiry"]["route"]["weight"] == 0.3
    assert seen["lease"]["epoch"] == seen["last_expiry"]["lease"]["epoch"] + 1
    metrics = httpx.get(f"{stack.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    assert sample(metrics, "gray_lease_expiries_total") == 1
    # Users keyed to the candidate are answered by the baseline again.
    before = stack.served(stack.versions["good"])
    time.sleep(1.0)
    assert stack.served(stack.versions["good"]) == before
    log = (stack.root / "gateway" / "gateway.log").read_text()
    assert "expired: nobody renewed it" in log
