"""Operators racing the controller: a rollback during the promotion, a rollback after it,
and twenty `gray rollback` commands at once. Real gateway, real sqlite registry, real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from gray.controller import lookup, rollouts
from gray.controller.journal import Journal, LocalJournal
from gray.controller.loop import Step
from gray.controller.plan.loading import load_plan
from gray.controller.registry import Registry
from gray.controller.runner import Runner, RunResult
from tests.e2e import conftest as e2e
from tests.e2e.conftest import LONG_STAGES, Stack, read_events

pytestmark = pytest.mark.slow
module_stack = e2e.module_stack


@pytest.fixture(scope="module")
def stack(module_stack: Stack) -> Stack:
    """One live stack for the module: every test leaves traffic and @champion on the baseline."""
    return module_stack


QUICK_STAGE = "  - {weight: 50%, dwell: 3s}"
CONCURRENT_ROLLBACKS = 20


class PromotionHook(Registry):
    """The real registry; `after_promote` runs between the alias move and the route write."""

    after_promote: Callable[[], None] = staticmethod(lambda: None)

    def promote(self, *args: Any, **kwargs: Any) -> list[Any]:
        moves = super().promote(*args, **kwargs)
        self.after_promote()
        return moves


@dataclass
class Prepared:
    """A one-stage rollout created in this process, ready to run."""

    journal: Journal
    step: Step
    runner: Runner

    @property
    def rollout_id(self) -> str:
        return self.step.state.rollout_id

    def run(self) -> RunResult:
        return self.runner.run(self.step)


def prepare(stack: Stack, name: str, registry: Registry) -> Prepared:
    """Preflight and create a one-stage rollout in this process (as `rollout start` does)."""
    plan_path = stack.plan(name, "challenger", QUICK_STAGE)
    plan = load_plan(plan_path)
    journal = lookup.open_journal(registry)
    router, metrics = rollouts.build_adapters(plan)
    report = rollouts.preflight(plan, registry, router, metrics, journal)
    step = rollouts.create_rollout(plan, plan_path.read_text(), report, journal)
    return Prepared(journal, step, Runner(plan, router, metrics, registry, journal))


def terminal_events(rollout_id: str) -> list[str]:
    record = LocalJournal().load(rollout_id)
    assert record is not None
    return [e.event for e in record.events if e.event in ("rolled_back", "aborted", "promoted")]


def test_a_rollback_during_the_promotion_moves_the_aliases_back(stack: Stack) -> None:
    registry = PromotionHook(stack.registry_uri)
    rollout = prepare(stack, "promotion-race", registry)
    rollout_id = rollout.rollout_id
    operator: list[subprocess.CompletedProcess[str]] = []
    registry.after_promote = lambda: operator.append(
        stack.gray("rollback", rollout_id, "--reason", "pager", "-o", "json")
    )
    result = rollout.run()
    assert operator and operator[0].returncode == 0, operator[0].stderr if operator else ""
    # The endpoint took the operator's rollback, so the registry follows it.
    assert result.exit_code == 1, result.reason
    assert "aliases restored: @champion → v" in result.reason
    route = stack.route()["route"]
    assert (route["baseline"], route["weight"]) == (stack.versions["baseline"], 0)
    champion = Registry(stack.registry_uri).resolve("fraud", "@champion").version
    assert champion == stack.versions["baseline"]
    assert terminal_events(rollout_id) == ["rolled_back"]
    assert rollout.journal.load(rollout_id).state.phase.value == "rolled_back"


def test_plain_rollback_of_a_promoted_rollout_is_refused_and_points_to_previous(
    stack: Stack,
) -> None:
    rollout = prepare(stack, "promoted", Registry(stack.registry_uri))
    rollout_id = rollout.rollout_id
    assert rollout.run().exit_code == 0
    before = stack.route()
    refused = stack.gray("rollback", "fraud", "--reason", "pager")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "--to previous" in refused.stderr and "nothing was changed" in refused.stderr
    assert stack.route() == before  # not even the lease moved
    assert terminal_events(rollout_id) == ["promoted"]
    undo = stack.gray("rollback", "fraud", "--to", "previous", "--registry-uri", stack.registry_uri)
    assert undo.returncode == 0, undo.stderr
    assert stack.route()["route"]["baseline"] == stack.versions["baseline"]
    champion = Registry(stack.registry_uri).resolve("fraud", "@champion").version
    assert champion == stack.versions["baseline"]
    # The undone promotion is part of the rollout's story, in status and in list.
    status = stack.gray("rollout", "status", rollout_id, "-o", "json")
    assert json.loads(status.stdout)["state"]["phase"] == "reverted", status.stdout
    listed = json.loads(stack.gray("rollout", "list", "-o", "json").stdout)["rollouts"]
    assert [r["phase"] for r in listed if r["rollout_id"] == rollout_id] == ["reverted"]


def test_twenty_concurrent_rollbacks_flip_the_endpoint_once_and_journal_one_end(
    stack: Stack,
) -> None:
    plan = stack.plan("twenty", "challenger", LONG_STAGES)
    controller = stack.spawn("rollout", "start", str(plan), "--output", "json")
    try:
        events = read_events(controller, "stage_started")
        rollout_id = events[-1]["rollout_id"]
        launched = time.monotonic()
        commands = [
            subprocess.Popen(
                [sys.executable, "-m", "gray.cli", "rollback", rollout_id, "-o", "json"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(CONCURRENT_ROLLBACKS)
        ]
        first_exit: float | None = None
        while stack.route()["route"]["weight"] != 0:
            assert time.monotonic() - launched < 60, "no rollback reached the endpoint"
            if first_exit is None and any(c.poll() is not None for c in commands):
                first_exit = time.monotonic() - launched
            time.sleep(0.01)
        flipped = time.monotonic() - launched
        # Every command writes before its bookkeeping: traffic is back before any finishes.
        assert first_exit is None, f"a command finished at {first_exit:.2f}s, before the write"
        outputs = [c.communicate(timeout=120) for c in commands]
        finished = time.monotonic() - launched
        print(
            f"\n20 concurrent rollbacks: endpoint flipped after {flipped:.2f}s, all done "
            f"after {finished:.2f}s"
        )
        assert [c.returncode for c in commands] == [0] * CONCURRENT_ROLLBACKS, outputs
        answers = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
        assert all(a["route"]["weight"] == 0 for a in answers)
        # One end is journaled: by the first command, or by the controller if it looked
        # between that command's write and its record; every other command finds it.
        assert sum(a["already_ended"] is None for a in answers) <= 1
        controller.communicate(timeout=30)  # read while waiting: a full pipe would block it
        assert controller.returncode == 1
        record = LocalJournal().load(rollout_id)
        assert record is not None
        ends = [e.event for e in record.events if e.state["phase"] in ("rolled_back", "aborted")]
        assert len(ends) == 1, ends
        seqs = [e.seq for e in record.events]
        assert len(seqs) == len(set(seqs)), seqs
        # The controller never moved on to the second stage.
        assert [e.event for e in record.events].count("stage_started") == 1
        # A rollback that starts after the end was journaled says the rollout had ended.
        again = stack.gray("rollback", rollout_id, "-o", "json")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout.strip().splitlines()[-1])["already_ended"] == "rolled_back"
    finally:
        if controller.poll() is None:
            controller.kill()
