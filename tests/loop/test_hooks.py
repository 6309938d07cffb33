"""The plan's hooks through the real runner and a real HTTP receiver (the endpoint and
metrics are the in-memory fakes; tests/e2e/test_hooks.py runs them against a real gateway)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gray.controller import loop
from gray.controller.state import Phase
from tests.receiver import Receiver

from .conftest import PLAN, Harness, rollout_state

ROLLOUT = "fraud-test-0001"
PAYLOAD_KEYS = {
    "version",
    "hook",
    "rollout_id",
    "plan",
    "model",
    "baseline",
    "candidate",
    "phase",
    "stage",
    "stages",
    "reason",
    "sent_at",
}


def with_hooks(tmp_path: Path, receiver: Receiver, *kinds: str, timeout: str = "2s") -> Harness:
    lines = "".join(
        f'  {kind}: {{url: "{receiver.url}/{kind}", timeout: {timeout}, '
        'headers: {Authorization: "Bearer hook-token-123"}}\n'
        for kind in kinds
    )
    return Harness(tmp_path, PLAN + "hooks:\n" + lines)


def weights(harness: Harness) -> list[float]:
    return [w.route.weight for w in harness.router.writes]


def test_every_hook_is_asked_in_order_with_the_documented_payload(
    tmp_path: Path, receiver: Receiver
) -> None:
    kinds = ("pre_rollout", "pre_stage", "post_stage", "confirm_promotion", "on_rollback")
    harness = with_hooks(tmp_path, receiver, *kinds)
    result = harness.runner().run(harness.start())
    assert result.exit_code == 0, result.reason
    assert receiver.paths() == [
        "/pre_rollout",
        *["/pre_stage", "/post_stage"] * 3,
        "/confirm_promotion",
    ]
    for got in receiver.received:
        assert set(got.body) == PAYLOAD_KEYS
        assert got.body["rollout_id"] == ROLLOUT and got.body["candidate"] == "2"
        assert got.headers["Authorization"] == "Bearer hook-token-123"
        assert got.headers["X-Gray-Hook"] == got.path.lstrip("/")
    stages = [b["stage"] for b in receiver.bodies("/pre_stage")]
    assert [s["number"] for s in stages] == [1, 2, 3]
    assert [s["weight"] for s in stages] == [0.1, 0.5, 1.0]
    assert receiver.bodies("/pre_rollout")[0]["stage"] is None
    assert harness.events.count("hook_passed") == 8
    # The pre_stage hook answers before the stage's route is written.
    assert harness.events.index("hook_passed") < harness.events.index("stage_started")


def test_a_failing_pre_rollout_hook_stops_with_exit_2_and_nothing_changed(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.reply("/pre_rollout", 503, body="smoke test: 3 of 20 requests failed")
    harness = with_hooks(tmp_path, receiver, "pre_rollout", "pre_stage", "on_rollback")
    result = harness.runner().run(harness.start())
    assert result.exit_code == 2
    assert harness.router.writes == []  # no route written, no lease taken
    assert harness.registry.rolled_back == []
    assert receiver.paths() == ["/pre_rollout"]
    assert "answered 503" in result.reason and "3 of 20 requests failed" in result.reason
    assert "nothing changed" in result.reason
    record = harness.journal.load(ROLLOUT)
    assert record.state.phase is Phase.ABORTED
    assert record.events[-1].data["hook"] == "pre_rollout"


def test_a_hook_that_times_out_fails_with_its_reason(tmp_path: Path, receiver: Receiver) -> None:
    receiver.reply("/pre_rollout", 200, delay=1.5)
    harness = with_hooks(tmp_path, receiver, "pre_rollout", timeout="300ms")
    result = harness.runner().run(harness.start())
    assert result.exit_code == 2
    assert "pre_rollout hook http://127.0.0.1:" in result.reason
    assert "timed out after 300ms" in result.reason


def test_a_failing_pre_stage_hook_rolls_back_before_the_stage_gets_traffic(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.reply("/pre_stage", 200, 500)
    receiver.reply("/on_rollback", 500)
    harness = with_hooks(tmp_path, receiver, "pre_stage", "on_rollback")
    warnings: list[str] = []
    result = harness.runner(on_warning=warnings.append).run(harness.start())
    assert result.exit_code == 1
    assert weights(harness) == [0.1, 0.0]  # stage 2's 50 % was never written
    assert "stage 2/3" in result.reason and "pre_stage hook" in result.reason
    assert harness.events.count("hook_rollback") == 1
    # on_rollback is told after the end; its failure is journaled and warned, nothing more.
    rolled = receiver.bodies("/on_rollback")
    assert len(rolled) == 1 and rolled[0]["phase"] == "rolled_back"
    assert harness.events[-1] == "hook_failed"
    assert any("on_rollback hook" in w and "answered 500" in w for w in warnings)
    assert harness.journal.load(ROLLOUT).state.phase is Phase.ROLLED_BACK


def test_a_failing_post_stage_hook_rolls_back(tmp_path: Path, receiver: Receiver) -> None:
    receiver.reply("/post_stage", 422, body="integration tests failed")
    harness = with_hooks(tmp_path, receiver, "post_stage")
    result = harness.runner().run(harness.start())
    assert result.exit_code == 1
    assert weights(harness) == [0.1, 0.0]
    assert "integration tests failed" in result.reason


def test_confirm_promotion_holds_until_the_hook_agrees(tmp_path: Path, receiver: Receiver) -> None:
    receiver.reply("/confirm_promotion", 409, 409, 409, 204)
    harness = with_hooks(tmp_path, receiver, "confirm_promotion")
    result = harness.runner().run(harness.start())
    assert result.exit_code == 0
    assert len(receiver.bodies("/confirm_promotion")) == 4  # asked again at every look
    assert harness.events.count("waiting_approval") == 1
    assert harness.registry.aliases["champion"] == "2"
    assert "confirm_promotion hook" in result.reason or "promoted" in result.reason


def test_an_approval_promotes_over_a_refusing_confirm_hook(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.reply("/confirm_promotion", 403)
    harness = with_hooks(tmp_path, receiver, "confirm_promotion")
    held = harness.runner(exit_on_hold=True).run(harness.start())
    assert held.exit_code == 3
    assert held.state.phase is Phase.WAITING_APPROVAL
    assert "gray rollout approve" in held.state.reason and "answered 403" in held.state.reason
    assert harness.router.applied.route.weight == 1.0  # traffic held at the last stage
    harness.journal.post_command(ROLLOUT, "approve", "release manager")
    record = harness.journal.load(ROLLOUT)
    resumed = record.state.with_(epoch=record.state.epoch + 1)
    result = harness.runner().run(loop.resume(harness.plan, resumed, harness.clock.now(), None))
    assert result.exit_code == 0
    assert result.state.phase is Phase.PROMOTED


@pytest.mark.parametrize("kind", ["pre_stage", "post_stage"])
def test_a_refused_connection_is_a_failure(tmp_path: Path, kind: str) -> None:
    plan = PLAN + f'hooks:\n  {kind}: {{url: "http://127.0.0.1:9/{kind}", timeout: 1s}}\n'
    harness = Harness(tmp_path, plan)
    result = harness.runner().run(harness.start())
    assert result.exit_code == 1
    assert f"{kind} hook http://127.0.0.1:9/… failed" in result.reason


def test_the_lease_is_renewed_before_each_hook_call_once_traffic_moved(
    tmp_path: Path, receiver: Receiver
) -> None:
    plain = Harness(tmp_path / "plain")
    assert plain.runner().run(plain.start()).exit_code == 0
    hooked = with_hooks(tmp_path / "hooked", receiver, "pre_stage", "post_stage")
    assert hooked.runner().run(hooked.start()).exit_code == 0
    # pre_stage of stages 2 and 3 (stage 1's has no lease to renew yet), post_stage of all 3.
    assert len(hooked.router.renewals) == len(plain.router.renewals) + 5


def test_hook_fields_are_checked(receiver: Receiver) -> None:
    from gray.controller.errors import PlanError
    from gray.controller.plan.loading import parse_plan

    def problems(hooks: str) -> dict[str, str]:
        text = PLAN.replace("interval: 1s", "router: {lease_ttl: 10s}\ninterval: 1s")
        with pytest.raises(PlanError) as caught:
            parse_plan(text + "hooks:\n" + hooks, "plan.yaml", environ={})
        return {p.field: p.message for p in caught.value.problems}

    typo = problems('  on_rolback: {url: "http://x"}\n')
    assert "did you mean 'on_rollback'" in typo["hooks.on_rolback"]
    found = problems(
        f'  post_stage: {{url: "{receiver.url}/x", timeout: 10s}}\n  pre_stage: {{url: "ftp://x/y"}}\n'
    )
    assert "not shorter than router.lease_ttl 10s" in found["hooks.post_stage.timeout"]
    assert "http:// or https://" in found["hooks.pre_stage.url"]


def test_an_unusable_hook_url_is_a_failure_not_a_crash() -> None:
    from gray.controller.hooks import HookCaller
    from gray.controller.plan.models import HookSpec, HooksSpec

    caller = HookCaller(HooksSpec(pre_stage=HookSpec(url="http://[::1/x", timeout="1s")))
    answer = caller.call("pre_stage", {"rollout_id": ROLLOUT})
    assert not answer.ok and answer.status is None and "pre_stage hook" in answer.reason


def test_an_operator_rollback_tells_the_webhooks_and_the_on_rollback_hook(
    tmp_path: Path, receiver: Receiver, fresh_registry: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A controller adopts an operator's end without acting on its own end, and with no
    # controller nobody else would tell anyone: `gray rollback`'s detached sync does.
    from typer.testing import CliRunner

    from gray.cli.app import app
    from gray.controller.journal import Journal, LocalJournal
    from gray.controller.operator import record_rollback
    from gray.controller.types import Applied, Lease, RouteSpec

    monkeypatch.setenv("GRAY_HOME", str(tmp_path / "home"))
    plan_text = (
        PLAN
        + f'notify: [{{url: "{receiver.url}/notify", events: [rollback]}}]\n'
        + f'hooks:\n  on_rollback: {{url: "{receiver.url}/on_rollback", timeout: 2s}}\n'
    )
    journal = Journal(LocalJournal())
    state = rollout_state(ROLLOUT)
    journal.create(state, plan_text)
    running = state.with_(phase=Phase.RUNNING, stage=1)
    journal.append(running, "stage_started", "stage 1", {})
    applied = Applied(RouteSpec(baseline="1", candidate="2"), Lease(ROLLOUT, 2))
    recorded = record_rollback(
        applied,
        router=None,
        journal=journal,
        registry=None,
        state=running,
        plan=None,
        reason="pager",
        to_previous=False,
    )
    assert recorded.event is not None
    uri = fresh_registry.uri  # type: ignore[attr-defined]
    result = CliRunner().invoke(
        app, ["rollout", "sync", ROLLOUT, "--tag-rolled-back", "--registry-uri", uri]
    )
    assert result.exit_code == 0, result.output
    # The notification goes out in the background, beside the hook's call.
    assert sorted(receiver.paths()) == ["/notify", "/on_rollback"]
    assert "pager" in receiver.bodies("/notify")[0]["text"]
    assert receiver.bodies("/on_rollback")[0]["phase"] == "rolled_back"
    events = LocalJournal().load(ROLLOUT).events  # type: ignore[union-attr]
    assert [e.event for e in events][-2:] == ["rolled_back", "hook_passed"]
    # The same sync logs the report the ended rollout's controller never wrote.
    from gray.controller.journal.mlflow_run import REPORT_ARTIFACT, MlflowJournal

    shared = MlflowJournal(fresh_registry.registry().client)  # type: ignore[attr-defined]
    run_id = shared._run_id(ROLLOUT)
    page = shared.client.download_artifacts(run_id, REPORT_ARTIFACT, str(tmp_path))
    assert "(gray rollback)" in Path(page).read_text(encoding="utf-8")
