"""The shared half of the journal: one MLflow run per rollout in `gray-rollouts`.

Layout of a run: tags `gray.*` (model, versions, phase, a compact state summary,
posted commands), artifacts `plan.yaml`, `state.json`, `final.json` (written
once, when the rollout ends), `events/NNNNNN-*.json` and `report.html` (the
rollout's report, logged when it ends), and metrics over time
(weight, mirror, stage, each gate's estimate and interval), so the MLflow UI
shows a rollout as it happens.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from gray.controller.journal.events import (
    Command,
    Event,
    RolloutRecord,
    current_state,
    print_warning,
)
from gray.controller.state import Phase, RolloutState

if TYPE_CHECKING:
    from gray.controller.registry.client import RegistryClient

EXPERIMENT = "gray-rollouts"
RECENT_EVENTS = 200  # how many of a run's newest events `load` reads
REPORT_ARTIFACT = "report.html"
_SUMMARY_DROP = ("judge", "last_verdict", "history")
_METRIC_NAME = re.compile(r"[^A-Za-z0-9_\-./ ]")


T = TypeVar("T")


def _state_from_dict(data: object) -> RolloutState:
    if not isinstance(data, dict):
        raise ValueError(f"a rollout state must be a JSON object, got {type(data).__name__}")
    return RolloutState.from_dict(data)


class MlflowJournal:
    """Reaches MLflow through the registry's client (URI rules, bounded HTTP retries)."""

    def __init__(
        self, client: RegistryClient, on_warning: Callable[[str], None] | None = print_warning
    ) -> None:
        self.uri = client.uri
        self.on_warning = on_warning
        self.registry_client = client
        self.client = client.mlflow
        self._experiment_id: str | None = None
        self._runs: dict[str, str] = {}

    # --- writing --------------------------------------------------------------

    def create(self, state: RolloutState, plan_text: str) -> None:
        tags = {
            "mlflow.runName": state.rollout_id,
            "gray.rollout_id": state.rollout_id,
            "gray.model": state.model,
            "gray.baseline": state.baseline,
            "gray.candidate": state.candidate,
            "gray.plan": state.plan_name,
            "gray.phase": state.phase.value,
        }
        run = self.client.create_run(self._experiment(), run_name=state.rollout_id, tags=tags)
        self._runs[state.rollout_id] = run.info.run_id
        self.client.log_text(run.info.run_id, plan_text, "plan.yaml")
        self.client.log_text(run.info.run_id, json.dumps(state.to_dict()), "state.json")

    def append(self, event: Event) -> None:
        from mlflow.entities import Metric, RunTag

        state = RolloutState.from_dict(event.state)
        run_id = self._run_id(state.rollout_id)
        # The judge's state (kilobytes per gate) travels in state.json only: per-event
        # artifacts keep the decision and its numbers, not the statistics' working set.
        body = json.dumps({**event.to_dict(), "state": _without_judge(event.state)})
        self.client.log_text(run_id, body, f"events/{event.seq:06d}-{int(event.at * 1000)}.json")
        self.client.log_text(run_id, json.dumps(event.state), "state.json")
        if state.phase.terminal:
            self.client.log_text(run_id, json.dumps(event.state), "final.json")
        stamp = int(event.at * 1000)
        metrics = [Metric(k, v, stamp, event.seq) for k, v in _event_metrics(event, state).items()]
        tags = [
            RunTag("gray.phase", state.phase.value),
            RunTag("gray.stage", str(state.stage)),
            RunTag("gray.seq", str(event.seq)),
            RunTag("gray.last_event", event.event),
            RunTag("gray.reason", state.reason[:4900]),
            RunTag("gray.summary", _summary(state)),
        ]
        self.client.log_batch(run_id, metrics=metrics, tags=tags)
        if state.phase.terminal:
            status = "FINISHED" if state.phase is Phase.PROMOTED else "FAILED"
            self.client.set_terminated(run_id, status=status, end_time=stamp)

    def log_report(self, rollout_id: str, html: str) -> None:
        """The rollout's report page as `report.html`, which the MLflow UI shows beside the run."""
        self.client.log_text(self._run_id(rollout_id), html, REPORT_ARTIFACT)

    def post_command(self, rollout_id: str, command: Command) -> None:
        run_id = self._run_id(rollout_id)
        self.client.set_tag(run_id, f"gray.command.{command.id}", json.dumps(command.to_dict()))

    # --- reading --------------------------------------------------------------

    def load(self, rollout_id: str) -> RolloutRecord | None:
        run_id = self._find_run(rollout_id)
        if run_id is None:
            return None
        with tempfile.TemporaryDirectory(prefix="gray-journal-") as tmp:
            events = self._recent_events(run_id, Path(tmp))
            plan_text = self._artifact_text(run_id, "plan.yaml", Path(tmp)) or ""
            final = self._artifact_text(run_id, "final.json", Path(tmp))
            latest = self._artifact_text(run_id, "state.json", Path(tmp))
        if final:
            state = RolloutState.from_dict(json.loads(final))
        elif latest:
            state = RolloutState.from_dict(json.loads(latest))
        elif events:
            state = current_state(events)
        else:
            return None
        return RolloutRecord(state, tuple(events), plan_text)

    def list_states(self, model: str | None) -> list[RolloutState]:
        experiment = self.client.get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            return []
        query = f"tags.`gray.model` = '{model}'" if model else ""
        runs = self.client.search_runs(
            [experiment.experiment_id], filter_string=query, max_results=500
        )
        states = []
        for run in runs:
            summary = run.data.tags.get("gray.summary")
            where = f"MLflow run {run.info.run_id} tag gray.summary"
            state = self._parsed(where, summary, _state_from_dict) if summary else None
            if state is not None:
                states.append(state)
        return states

    def commands(self, rollout_id: str) -> list[Command]:
        run_id = self._find_run(rollout_id)
        if run_id is None:
            return []
        tags = self.client.get_run(run_id).data.tags
        found = [
            self._parsed(f"MLflow run {run_id} tag {key}", value, Command.from_dict)
            for key, value in tags.items()
            if key.startswith("gray.command.")
        ]
        return [command for command in found if command is not None]

    # --- helpers --------------------------------------------------------------

    def _experiment(self) -> str:
        if self._experiment_id is None:
            self._experiment_id = self.registry_client.experiment_id(EXPERIMENT)
        return self._experiment_id

    def _find_run(self, rollout_id: str) -> str | None:
        if rollout_id in self._runs:
            return self._runs[rollout_id]
        experiment = self.client.get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            return None
        runs = self.client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`gray.rollout_id` = '{rollout_id}'",
            max_results=1,
        )
        if not runs:
            return None
        self._runs[rollout_id] = runs[0].info.run_id
        return self._runs[rollout_id]

    def _run_id(self, rollout_id: str) -> str:
        run_id = self._find_run(rollout_id)
        if run_id is None:
            raise LookupError(f"no MLflow run for rollout {rollout_id}")
        return run_id

    def _recent_events(self, run_id: str, folder: Path) -> list[Event]:
        files = sorted(f.path for f in self.client.list_artifacts(run_id, "events"))
        events = []
        for path in files[-RECENT_EVENTS:]:
            text = self._artifact_text(run_id, path, folder)
            event = (
                self._parsed(f"MLflow run {run_id} {path}", text, Event.from_dict) if text else None
            )
            if event is not None:
                events.append(event)
        return events

    def _parsed(self, where: str, text: str, parse: Callable[[object], T]) -> T | None:
        """One stored record, or None with a warning naming it when it is damaged: one bad
        record written by a crashed or foreign writer must not hide the whole rollout."""
        try:
            return parse(json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            if self.on_warning is not None:
                self.on_warning(f"{where}: skipped a damaged journal record ({exc})")
            return None

    def _artifact_text(self, run_id: str, path: str, folder: Path) -> str | None:
        try:
            local = self.client.download_artifacts(run_id, path, str(folder))
        except Exception:
            return None
        file = Path(local)
        return file.read_text(encoding="utf-8") if file.is_file() else None


def _without_judge(state: dict[str, object]) -> dict[str, object]:
    return {**state, "judge": None}


def _summary(state: RolloutState) -> str:
    data = {k: v for k, v in state.to_dict().items() if k not in _SUMMARY_DROP}
    text = json.dumps(data)
    if len(text) > 4900:
        data["reason"] = data["reason"][:500]
        text = json.dumps(data)
    return text


def _event_metrics(event: Event, state: RolloutState) -> dict[str, float]:
    metrics: dict[str, float] = {"stage": float(state.stage)}
    route = event.data.get("route")
    if isinstance(route, dict):
        inner = route.get("route", route)
        metrics["weight"] = float(inner.get("weight", 0.0))
        metrics["mirror"] = float(inner.get("mirror", 0.0))
    verdict = event.data.get("verdict")
    if isinstance(verdict, dict):
        for gate in verdict.get("verdicts", []):
            name = _METRIC_NAME.sub("_", str(gate.get("gate", "gate")))
            for field, value in (
                ("estimate", gate.get("estimate")),
                ("lower", (gate.get("interval") or [None, None])[0]),
                ("upper", (gate.get("interval") or [None, None])[1]),
            ):
                if isinstance(value, int | float) and math.isfinite(value):
                    metrics[f"gate.{name}.{field}"] = float(value)
    if "candidate_requests" in event.data:
        metrics["candidate_requests"] = float(event.data["candidate_requests"])
    return metrics
