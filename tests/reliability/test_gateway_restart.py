"""A gateway restarted mid-stage (its counters start again from zero), then `gray rollout
resume`: the healthy candidate passes its stage instead of being failed on a negative count.
Real gateway (stopped and started again on the same port), real registry, real CLI."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.e2e import conftest as e2e
from tests.e2e.conftest import Stack, read_events

pytestmark = pytest.mark.slow
stack = e2e.stack  # the live stack: sqlite registry, real gateway, steady traffic

STAGES = (
    "  - {weight: 30%, dwell: 6s}\n"
    "  - {weight: 60%, dwell: 10s, min_requests: 30}\n"
    "  - {weight: 100%, dwell: 3s}"
)
# No second chance for a stage short of requests: a wrong count fails the rollout at once.
STRICT_POLICY = "inconclusive: {extend: 2s, max_extensions: 1, then: fail}"


def test_resume_after_a_gateway_restart_passes_a_healthy_candidate(stack: Stack) -> None:
    plan = stack.plan("restart", "challenger", STAGES)
    text = plan.read_text()
    plan.write_text(
        text.replace("inconclusive: {extend: 4s, max_extensions: 2, then: pass}", STRICT_POLICY)
    )
    assert STRICT_POLICY in plan.read_text()
    controller = stack.spawn("rollout", "start", str(plan), "--output", "json")
    try:
        events = read_events(controller, "stage_started")
        events += read_events(controller, "stage_started")  # the 60 % stage
        rollout_id = events[-1]["rollout_id"]
        time.sleep(3)
    finally:
        os.kill(controller.pid, signal.SIGKILL)
        controller.wait(timeout=10)
    stack.restart_gateway()
    assert stack.route()["route"]["weight"] == pytest.approx(0.6)  # the route survived
    result = stack.gray("rollout", "resume", rollout_id, "--output", "json")
    resumed = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    reasons = [f"{e.get('event')}: {e.get('reason')}" for e in resumed]
    assert result.returncode == 0, [*reasons, result.stderr]
    assert not [r for r in reasons if "only -" in r], reasons
    assert any(e.get("event") == "promoted" for e in resumed)
