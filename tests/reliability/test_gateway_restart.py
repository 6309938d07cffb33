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

# A busy first stage makes the second's origin count large; the second stage sends the
# candidate few requests, so those counted after the restart stay below that origin.
STAGES = (
    "  - {weight: 90%, dwell: 12s}\n"
    "  - {weight: 5%, dwell: 5s, min_requests: 10, allow_decrease: true}\n"
    "  - {weight: 100%, dwell: 3s}"
)


def test_resume_after_a_gateway_restart_passes_a_healthy_candidate(stack: Stack) -> None:
    plan = stack.plan("restart", "challenger", STAGES)
    # Wide margins: the gates pass on few samples, so the dwell's end turns on the count.
    text = plan.read_text().replace("min_samples: 60", "min_samples: 10")
    plan.write_text(
        text.replace("max_increase_abs: 5%", "max_increase_abs: 60%").replace(
            "max_increase_abs: 8%", "max_increase_abs: 60%"
        )
    )
    controller = stack.spawn("rollout", "start", str(plan), "--output", "json")
    try:
        events = read_events(controller, "stage_started")
        events += read_events(controller, "stage_started")  # the 5 % stage
        rollout_id = events[-1]["rollout_id"]
        time.sleep(2)
    finally:
        os.kill(controller.pid, signal.SIGKILL)
        controller.wait(timeout=10)
    stack.restart_gateway()
    assert stack.route()["route"]["weight"] == pytest.approx(0.05)  # the route survived
    result = stack.gray("rollout", "resume", rollout_id, "--output", "json")
    resumed = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    reasons = [f"{e.get('event')}: {e.get('reason')}" for e in resumed]
    # The count the stage's min_requests is held to carries on from before the restart.
    assert not [r for r in reasons if "only -" in r], reasons
    assert result.returncode == 0, [*reasons, result.stderr]
    assert any(e.get("event") == "promoted" for e in resumed)
