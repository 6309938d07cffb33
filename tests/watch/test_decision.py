"""What the watcher does about the version the candidate alias names, and what a retry starts:
pure functions of the registry's and the journals' records."""

from __future__ import annotations

import pytest

from gray.controller.errors import ConfigError, RolloutError
from gray.controller.registry import ModelVersionInfo
from gray.controller.registry.versions import TAG_ROLLED_BACK_AT, TAG_ROLLOUT_ID
from gray.controller.rollout_retry import pinned_plan_text, retries_of, retry_target
from gray.controller.state import Phase, RolloutState
from gray.controller.watch.decision import Action, decide

SHA = "ab" * 32


def version(
    number: str, sha: str | None = SHA, status: str = "READY", **tags: str
) -> ModelVersionInfo:
    return ModelVersionInfo(
        name="fraud",
        version=number,
        model_uri=f"models:/fraud/{number}",
        source="s3://models/fraud",
        run_id=None,
        status=status,
        aliases=(),
        tags=dict(tags),
        preprocessor_sha256=sha,
    )


def rollout(
    candidate: str, phase: Phase, rollout_id: str = "fraud-1", at: float = 1.0, **more: object
) -> RolloutState:
    return RolloutState(
        rollout_id=rollout_id,
        plan_name="p",
        model="fraud",
        baseline="1",
        candidate=candidate,
        baseline_ref="@champion",
        candidate_ref="@challenger",
        epoch=1,
        phase=phase,
        started_at=at,
        **more,  # type: ignore[arg-type]
    )


BASELINE = version("1")


def test_a_new_bound_version_starts_and_the_baseline_itself_is_idle() -> None:
    assert decide("@challenger", BASELINE, version("2"), []).action is Action.START
    assert decide("@challenger", BASELINE, version("2", sha="none"), []).action is Action.START
    assert decide("@challenger", BASELINE, version("1"), []).action is Action.IDLE


def test_one_rollout_per_model_at_a_time() -> None:
    running = rollout("2", Phase.RUNNING, "fraud-running")
    decision = decide("@challenger", BASELINE, version("3"), [running])
    assert decision.action is Action.WAIT and "fraud-running" in decision.reason


@pytest.mark.parametrize("phase", [Phase.ROLLED_BACK, Phase.ABORTED, Phase.REVERTED])
def test_an_undone_version_is_not_started_again(phase: Phase) -> None:
    decision = decide("@challenger", BASELINE, version("2"), [rollout("2", phase, "fraud-old")])
    assert decision.action is Action.SKIP
    assert "gray rollout retry fraud-old" in decision.reason
    # Its latest rollout decides: a retry that was promoted settles it too.
    retried = rollout("2", Phase.PROMOTED, "fraud-new", at=2.0, retry_of="fraud-old")
    after = decide("@challenger", BASELINE, version("2"), [rollout("2", phase), retried])
    assert after.action is Action.SKIP and "promoted by rollout fraud-new" in after.reason


def test_a_version_tagged_rolled_back_elsewhere_is_skipped() -> None:
    tagged = version("2", **{TAG_ROLLED_BACK_AT: "2026-11-30T10:00:00Z", TAG_ROLLOUT_ID: "fraud-x"})
    decision = decide("@challenger", BASELINE, tagged, [])
    assert decision.action is Action.SKIP and "gray rollout retry fraud-x" in decision.reason


def test_unbound_or_unready_versions_wait() -> None:
    unbound = decide("@challenger", BASELINE, version("2", sha=None), [])
    assert unbound.action is Action.WAIT and "gray registry bind fraud 2" in unbound.reason
    pending = decide("@challenger", BASELINE, version("2", status="PENDING_REGISTRATION"), [])
    assert pending.action is Action.WAIT and "not READY" in pending.reason


PLAN_TEXT = """\
name: p  # the plan
model:
  name: fraud
  baseline: "@champion"   # kept comment
  candidate: '@challenger'
registry: {uri: "${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db}"}
"""


def test_a_retry_pins_both_versions_and_keeps_the_rest() -> None:
    pinned = pinned_plan_text(PLAN_TEXT, "1", "2", "old/plan.yaml")
    assert 'baseline: "1"   # kept comment' in pinned
    assert 'candidate: "2"' in pinned
    assert "${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db}" in pinned
    with pytest.raises(ConfigError, match="no model block"):
        pinned_plan_text("", "1", "2", "p")
    with pytest.raises(ConfigError, match=r"model\.baseline is not a plain value"):
        pinned_plan_text("model: {name: fraud, baseline: [1], candidate: '2'}\n", "1", "2", "p")


def test_only_an_undone_rollout_can_be_retried() -> None:
    assert retry_target(rollout("2", Phase.ROLLED_BACK), PLAN_TEXT).old.candidate == "2"
    for phase, words in ((Phase.RUNNING, "still running"), (Phase.PROMOTED, "ended promoted")):
        with pytest.raises(RolloutError, match=words):
            retry_target(rollout("2", phase), PLAN_TEXT)
    states = [
        rollout("2", Phase.RUNNING, "fraud-b", at=3.0, retry_of="fraud-a"),
        rollout("2", Phase.ROLLED_BACK, "fraud-a"),
    ]
    assert [s.rollout_id for s in retries_of(states, "fraud-a")] == ["fraud-b"]
