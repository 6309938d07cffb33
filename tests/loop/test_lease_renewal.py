"""The controller writes candidate traffic with a lease time-to-live and renews it at every
look; a stage with `hold: true` (or the run with --hold-traffic) writes it with no expiry."""

from __future__ import annotations

from pathlib import Path

import pytest

from gray.controller.errors import PlanError
from gray.controller.plan import parse_plan
from gray.controller.runner import lease_ttl
from gray.controller.types import Lease

from .conftest import PLAN, Harness


def test_every_stage_write_carries_the_ttl_and_every_look_renews_it(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    result = harness.runner().run(harness.start())
    assert result.state.phase.value == "promoted"
    default = max(3 * harness.plan.interval, 30.0)
    assert lease_ttl(harness.plan) == default
    # Three stage writes with the ttl, then the promotion's baseline-only write.
    assert harness.router.ttls[:3] == [default] * 3
    renewals = harness.router.renewals
    assert len(renewals) >= 40  # 50 s of dwell, a look each second
    assert {ttl for _, ttl in renewals} == {default}
    assert {lease for lease, _ in renewals} == {Lease("fraud-test-0001", 1)}


def test_a_held_stage_or_hold_traffic_writes_with_no_expiry(tmp_path: Path) -> None:
    text = PLAN.replace("{weight: 50%, dwell: 20s}", "{weight: 50%, dwell: 20s, hold: true}")
    text = text.replace("interval: 1s", "interval: 1s\nrouter: {lease_ttl: 5s}")
    harness = Harness(tmp_path, text)
    harness.runner().run(harness.start())
    assert harness.router.ttls[:3] == [5.0, None, 5.0]
    assert {ttl for _, ttl in harness.router.renewals} == {5.0}

    held = Harness(tmp_path / "held")
    held.runner(hold_traffic=True).run(held.start())
    assert held.router.ttls[:3] == [None, None, None] and held.router.renewals == []


def test_a_lease_ttl_shorter_than_the_interval_is_refused() -> None:
    text = PLAN.replace("interval: 1s", "interval: 10s\nrouter: {lease_ttl: 5s}")
    with pytest.raises(PlanError, match="lease_ttl must be longer than the interval"):
        parse_plan(text, "plan.yaml", environ={})
