"""The controller writes candidate traffic with a lease time-to-live and renews it at every
look; a stage with `hold: true` (or the run with --hold-traffic) writes it with no expiry."""

from __future__ import annotations

from pathlib import Path

import pytest

from gray.controller.endpoint_actions import lease_ttl
from gray.controller.errors import LeaseExpiredError, PlanError
from gray.controller.plan.loading import parse_plan
from gray.controller.types import Applied, Lease
from tests.fakes import FakeRouter

from .conftest import PLAN, Harness


class ExpiringRouter(FakeRouter):
    """A router whose lease ran out while the controller was away (stopped, paused)."""

    def __init__(self, baseline: str) -> None:
        super().__init__(baseline)
        self.expired: Lease | None = None

    def expire(self) -> None:
        lease = self.applied.lease
        assert lease is not None
        rolled_back = self.applied.route.rolled_back()
        self.applied = Applied(rolled_back, Lease(lease.rollout_id, lease.epoch + 1))
        self.expired = lease

    def renew(self, lease: Lease, ttl: float) -> Applied:
        if lease == self.expired:
            raise LeaseExpiredError("the lease expired at 10:00:00 UTC, unrenewed")
        return super().renew(lease, ttl)


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


def test_a_controller_that_comes_back_after_its_lease_expired_says_so_and_stops(
    tmp_path: Path,
) -> None:
    harness = Harness(tmp_path)
    router = ExpiringRouter(baseline="1")
    harness.router = router
    harness.metrics.router = router
    runner = harness.runner()
    original_sleep = harness.clock.sleep
    slept = 0.0

    def sleep(seconds: float) -> None:
        nonlocal slept
        slept += seconds
        if slept > 5 and router.expired is None:
            router.expire()  # the controller was away longer than its ttl
        original_sleep(seconds)

    harness.clock.sleep = sleep  # type: ignore[method-assign]
    result = runner.run(harness.start())
    assert result.state.phase.value == "rolled_back"
    assert "expired" in result.reason and "unrenewed" in result.reason
    assert router.applied.route.weight == 0


def test_a_stopped_controller_says_how_long_its_traffic_stays(tmp_path: Path) -> None:
    from gray.cli.rollout import _kept

    harness = Harness(tmp_path)
    state = harness.state()
    assert "until its lease runs out (30s after the last look)" in _kept(
        harness.plan, state, hold_traffic=False
    )
    assert _kept(harness.plan, state, hold_traffic=True).endswith("with no expiry")


def test_plan_show_marks_held_stages(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from gray.cli.app import app

    path = tmp_path / "plan.yaml"
    path.write_text(
        PLAN.replace("{weight: 50%, dwell: 20s}", "{weight: 50%, dwell: 20s, hold: true}")
    )
    shown = CliRunner().invoke(app, ["plan", "show", str(path)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "⚓" in shown.output and "no lease expiry" in shown.output
    listed = CliRunner().invoke(app, ["plan", "show", str(path), "-o", "json"])
    assert [stage["hold"] for stage in json.loads(listed.stdout)["stages"]] == [False, True, False]
