"""What the report reads out of a real journal: the gates' numbers look by look, the marks,
the traffic, the split in force, and who decided."""

from __future__ import annotations

from gray.controller.journal import Event, EventKind, RolloutRecord
from gray.controller.report import build_report
from gray.controller.report.facts import decided_by, report_facts
from gray.controller.state import Phase, RolloutState

from .conftest import RolloutJournal


def test_every_gate_has_its_interval_margin_and_e_value_at_every_look(
    rollout_journal: RolloutJournal,
) -> None:
    facts = report_facts(rollout_journal.record, rollout_journal.plan)
    looks = [e for e in rollout_journal.record.events if e.event is EventKind.LOOK]
    gates = {g.key: g for g in facts.gates}
    assert set(gates) == {"error_rate", "latency<250ms", "disagreement"}
    error = gates["error_rate"]
    assert len(error.points) == len(looks)  # judged at every look of every stage
    assert {p.stage for p in error.points} == {0, 1, 2, 3}
    decided = [p for p in error.points if p.lower is not None and p.upper is not None]
    assert decided and all(p.lower <= p.upper for p in decided)
    assert all(p.alpha > 0 for p in error.points)
    assert all(p.allowed is not None for p in error.points if p.estimate is not None)
    assert error.points[-1].outcome == "fail"
    assert sum(p.e_value is not None for p in error.points) > len(looks) / 2
    # Only the shadow stage judges disagreement.
    assert {p.stage for p in gates["disagreement"].points} == {0}


def test_the_marks_are_the_stages_holds_commands_and_the_decision(
    rollout_journal: RolloutJournal,
) -> None:
    facts = report_facts(rollout_journal.record, rollout_journal.plan)
    kinds = [m.kind for m in facts.markers]
    assert kinds.count("stage") == 4
    for kind in ("stage_extended", "paused", "unpaused", "waiting_approval", "approved"):
        assert kind in kinds
    decisions = [m.label for m in facts.markers if m.kind == "decision"]
    assert decisions == ["gate_failed", "rolled_back"]
    assert facts.header.decided_by == "the gates: error_rate failed"
    assert facts.header.phase is Phase.ROLLED_BACK


def test_stages_traffic_and_the_split_in_force(rollout_journal: RolloutJournal) -> None:
    facts = report_facts(rollout_journal.record, rollout_journal.plan)
    assert [(s.name, s.outcome) for s in facts.stages] == [
        ("shadow", "passed"),
        ("canary", "passed"),
        ("50%", "passed"),
        ("100%", "failed"),
    ]
    assert [s.extensions for s in facts.stages][:2] == [1, 1]
    # The split as written and read back, ending on the baseline alone.
    splits = [(r.weight, r.mirror) for r in facts.routes]
    assert splits == [(0.0, 1.0), (0.1, 0.0), (0.5, 0.0), (1.0, 0.0), (0.0, 0.0)]
    # 200 requests a second, split by the route in force, each look's own counts.
    canary = [p for p in facts.traffic if p.stage == 1]
    rates = [p.rows["candidate"][0] / p.seconds for p in canary if "candidate" in p.rows]
    assert rates and all(15 <= r <= 25 for r in rates)
    assert all(p.rows["baseline"][3] is not None for p in canary)  # a p50 from the histogram
    shadow = [p for p in facts.traffic if p.stage == 0]
    assert all(p.pairs and p.pairs[0] > 0 for p in shadow[1:])
    assert facts.has_shadow


def event(seq: int, kind: EventKind, reason: str, **data: object) -> Event:
    return Event(seq, float(seq), kind, reason, dict(data), {"phase": "running"})


def test_who_decided_names_the_operator_the_hook_or_the_approvers() -> None:
    operator = (event(1, EventKind.ROLLED_BACK, "rolled back by ana", operator="ana@box"),)
    assert decided_by(operator, Phase.ROLLED_BACK) == "ana@box (gray rollback)"
    hook = (
        event(1, EventKind.HOOK_FAILED, "HTTP 500", hook="post_stage"),
        event(2, EventKind.HOOK_ROLLBACK, "stage 1/2: HTTP 500"),
        event(3, EventKind.ROLLED_BACK, "rolled back"),
    )
    assert decided_by(hook, Phase.ROLLED_BACK) == "the plan's post_stage hook"
    promoted = (
        event(1, EventKind.APPROVED, "stage 2/3 (50%) approved by bo@ci: samples look right"),
        event(2, EventKind.PROMOTING, "all 3 stages passed; promoting"),
        event(3, EventKind.PROMOTED, "promoted v2"),
    )
    assert (
        decided_by(promoted, Phase.PROMOTED) == "the gates: every stage passed, approved by bo@ci"
    )
    forced = (event(1, EventKind.PROMOTE_OVERRIDE, "promotion forced by cy@box: hotfix"),)
    assert decided_by(forced, Phase.PROMOTED).startswith("cy@box (gray rollout promote")
    assert decided_by((), Phase.RUNNING) == "nobody yet: the rollout is running"


def test_a_journal_read_from_its_newest_events_says_so(rollout_journal: RolloutJournal) -> None:
    record = rollout_journal.record
    newest = RolloutRecord(record.state, record.events[-10:], record.plan_text)
    facts = report_facts(newest, rollout_journal.plan)
    assert facts.notes and "holds events" in facts.notes[0]
    assert not report_facts(record, rollout_journal.plan).notes


def test_a_running_rollout_gives_a_snapshot_up_to_its_last_event(
    rollout_journal: RolloutJournal,
) -> None:
    events = rollout_journal.record.events
    cut = next(i for i, e in enumerate(events) if e.event is EventKind.WAITING_APPROVAL)
    so_far = events[: cut + 1]
    state = RolloutState.from_dict(so_far[-1].state)
    record = RolloutRecord(state, so_far, rollout_journal.record.plan_text)
    facts = report_facts(record, rollout_journal.plan, now=so_far[-1].at + 60)
    assert facts.header.phase is Phase.WAITING_APPROVAL
    assert facts.header.decided_by == "nobody yet: the rollout is waiting approval"
    assert facts.header.as_of == so_far[-1].at + 60
    assert [s.outcome for s in facts.stages] == ["passed", "passed", "passed"]
    assert not [m for m in facts.markers if m.kind == "decision"]
    page = build_report(record, rollout_journal.plan, now=so_far[-1].at + 60)
    assert "still running" in page and "waiting approval" in page
