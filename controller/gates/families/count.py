"""The count family: error rate, bad-request rate, slow-request rate, wrong predictions,
accuracy.

Each counts events against exposures per version (the metric table's `tally`) and
uses the test in `stats/counts.py`. A metric whose higher values are better
(accuracy) counts the complement (wrong predictions) with an absolute allowance
(`max_decrease`) and is reported as a difference of accuracies.

Which test decides: when every look with traffic brought counts per hash group of
the routing key for both versions, the clustered test (`stats/clustered.py`),
valid when events cluster by key; otherwise the per-request test, which assumes
independent requests and says so. Both run on every look, so a source that stops
sending group counts mid-stage leaves the per-request test with all the traffic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from gray.controller.gates.config import GateConfig
from gray.controller.gates.families.grouped import GroupedEvidence
from gray.controller.gates.increments import Increment
from gray.controller.gates.metrics import metric
from gray.controller.gates.stats.clustered import ClusteredTrack
from gray.controller.gates.stats.counts import CountRule, CountTrack
from gray.controller.gates.stats.special import exp_or_inf
from gray.controller.gates.verdict import (
    Outcome,
    Verdict,
    join_notes,
    number_in,
    number_out,
    ordered_interval,
)
from gray.controller.plan.units import format_duration
from gray.controller.types import VersionCounters


@dataclass(frozen=True)
class CountGate:
    """One count gate through a stage: the ratio test's grid and bounds, both versions'
    counts and rate bounds (the state of a one-row `CountTrack`), and what the verdict
    reports besides."""

    config: GateConfig
    loglik: tuple[float, ...]
    lower_index: int = -1
    upper_index: int = 0
    log_e: float = 0.0
    max_log_e: float = -math.inf
    candidate_events: int = 0
    candidate_exposure: int = 0
    baseline_events: int = 0
    baseline_exposure: int = 0
    candidate_rate_bounds: tuple[float, float] = (0.0, 1.0)
    baseline_rate_bounds: tuple[float, float] = (0.0, 1.0)
    slow_seen: bool = False  # the source counted this gate's latency edge at least once
    slow_missing: bool = False  # a look had requests but no count at this gate's edge
    # The baseline's counts before the stage: its rate while the stage gives it no traffic.
    reference_events: int = 0
    reference_exposure: int = 0
    # Metrics that count replays (error_rate): candidate failures the endpoint replayed on
    # the baseline, and how many of them the baseline failed too.
    replayed_failures: int = 0
    baseline_also_failed: int = 0
    # The stage's counts by hash group of the routing key, while every look brought them.
    # (Once a look with traffic comes without them, they are dropped for the stage.)
    grouped: GroupedEvidence | None = None

    family: ClassVar[str] = "count"

    @property
    def method(self) -> str:
        """`clustered` when the groups decide (valid when events cluster by routing key),
        `per_request` when the test assumes independent requests."""
        if self.grouped is not None and self.baseline_exposure > 0:
            return CLUSTERED
        return PER_REQUEST

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "family": self.family,
            "config": self.config.to_dict(),
            "loglik": list(self.loglik),
            "lower_index": self.lower_index,
            "upper_index": self.upper_index,
            "log_e": number_out(self.log_e),
            "max_log_e": number_out(self.max_log_e),
            "candidate_events": self.candidate_events,
            "candidate_exposure": self.candidate_exposure,
            "baseline_events": self.baseline_events,
            "baseline_exposure": self.baseline_exposure,
            "candidate_rate_bounds": list(self.candidate_rate_bounds),
            "baseline_rate_bounds": list(self.baseline_rate_bounds),
            "slow_seen": self.slow_seen,
            "slow_missing": self.slow_missing,
            "reference_events": self.reference_events,
            "reference_exposure": self.reference_exposure,
            "replayed_failures": self.replayed_failures,
            "baseline_also_failed": self.baseline_also_failed,
        }
        # Written only when there is something to say, so a state without groups keeps the
        # shape earlier versions wrote and read.
        if self.grouped is not None:
            out["grouped"] = self.grouped.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CountGate:
        return cls(
            config=GateConfig.from_dict(data["config"]),
            loglik=tuple(float(x) for x in data["loglik"]),
            lower_index=int(data["lower_index"]),
            upper_index=int(data["upper_index"]),
            log_e=_float(data.get("log_e"), 0.0),
            max_log_e=_float(data.get("max_log_e"), -math.inf),
            candidate_events=int(data["candidate_events"]),
            candidate_exposure=int(data["candidate_exposure"]),
            baseline_events=int(data["baseline_events"]),
            baseline_exposure=int(data["baseline_exposure"]),
            candidate_rate_bounds=_pair(data["candidate_rate_bounds"]),
            baseline_rate_bounds=_pair(data["baseline_rate_bounds"]),
            slow_seen=bool(data.get("slow_seen", False)),
            slow_missing=bool(data.get("slow_missing", False)),
            reference_events=int(data.get("reference_events", 0)),
            reference_exposure=int(data.get("reference_exposure", 0)),
            replayed_failures=int(data.get("replayed_failures", 0)),
            baseline_also_failed=int(data.get("baseline_also_failed", 0)),
            grouped=GroupedEvidence.from_dict(data["grouped"]) if data.get("grouped") else None,
        )

    @classmethod
    def start(cls, config: GateConfig, baseline_before: VersionCounters) -> CountGate:
        grid = rule_for(config).grid
        reference = events_and_exposures(config, VersionCounters(), baseline_before)
        _, _, reference_events, reference_exposure = reference or (0, 0, 0, 0)
        return cls(
            config=config,
            loglik=(0.0,) * grid.size,
            upper_index=grid.size,
            reference_events=reference_events,
            reference_exposure=reference_exposure,
        )

    def update(self, seen: Increment) -> CountGate:
        """Add one look. A look whose slow-request counts are missing is left out whole."""
        definition = metric(self.config.metric)
        observed = events_and_exposures(self.config, seen.candidate, seen.baseline)
        if observed is None:
            return replace(self, slow_missing=True)
        track = _track(self)
        track.add(*observed)
        replays = definition.counts_replays
        return replace(
            _state(self, track),
            grouped=self._grouped_after(seen, traffic=observed[1] + observed[3] > 0),
            slow_seen=self.slow_seen or definition.needs_slo,
            replayed_failures=self.replayed_failures
            + (seen.candidate.replayed_failures if replays else 0),
            baseline_also_failed=self.baseline_also_failed
            + (seen.candidate.baseline_also_failed if replays else 0),
        )

    def _grouped_after(self, seen: Increment, *, traffic: bool) -> GroupedEvidence | None:
        """The group evidence after a look: grown while every look with traffic brings group
        counts for both versions, and None for good once one did not (traffic counted
        without groups cannot be split into them afterwards)."""
        counted_before = self.candidate_exposure + self.baseline_exposure > 0
        if self.grouped is None and counted_before:
            return None
        tally = metric(self.config.metric).tally
        assert tally is not None  # a count gate's metric always has one
        candidate = tally.read_groups(seen.candidate, self.config.slo)
        baseline = tally.read_groups(seen.baseline, self.config.slo)
        if candidate is None or baseline is None:
            return None if traffic else self.grouped
        grouped = self.grouped or GroupedEvidence.empty(len(candidate[0]))
        if grouped.groups != len(candidate[0]) or grouped.groups != len(baseline[0]):
            return None  # the source changed how many groups it counts
        return grouped.added(rule_for(self.config), candidate, baseline)

    def verdict(self) -> Verdict:
        if self.candidate_exposure == 0:
            return _no_data(self)
        track = _track(self)
        config = self.config
        decider: CountTrack | ClusteredTrack = track
        if self.method == CLUSTERED:
            assert self.grouped is not None
            decider = self.grouped.track(rule_for(config))
        failed = bool(decider.fails()[0])
        passed = bool(decider.passes()[0]) and self.candidate_exposure >= config.min_samples
        outcome = Outcome.FAIL if failed else Outcome.PASS if passed else Outcome.INCONCLUSIVE
        if metric(config.metric).higher_is_better:
            return _difference_verdict(self, track, decider, outcome)
        return _ratio_verdict(self, track, decider, outcome)


PER_REQUEST = "per_request"
CLUSTERED = "clustered"


def rule_for(config: GateConfig) -> CountRule:
    """The count test's rule for a gate: a complement's allowance is absolute."""
    if metric(config.metric).higher_is_better:
        return CountRule(alpha=config.alpha, max_increase_abs=config.max_decrease or 0.0)
    return CountRule(
        alpha=config.alpha,
        max_increase=config.max_increase or 0.0,
        max_increase_abs=config.max_increase_abs,
    )


def events_and_exposures(
    config: GateConfig, candidate: VersionCounters, baseline: VersionCounters
) -> tuple[int, int, int, int] | None:
    """(candidate events, candidate exposures, baseline events, baseline exposures)."""
    tally = metric(config.metric).tally
    if tally is None:
        raise ValueError(f"{config.metric} is not a count gate")
    candidate_counts = tally.read(candidate, config.slo)
    baseline_counts = tally.read(baseline, config.slo)
    if candidate_counts is None or baseline_counts is None:
        return None
    return (*candidate_counts, *baseline_counts)


# --- verdicts ---------------------------------------------------------------------------


def _no_data(state: CountGate) -> Verdict:
    config = state.config
    definition = metric(config.metric)
    if definition.needs_slo and state.slow_missing and not state.slow_seen:
        edge = format_duration(float(config.slo or 0.0))
        note = f"the metrics source does not count requests slower than {edge}"
    elif definition.needs_labels:
        note = "no labelled candidate predictions yet"
    else:
        note = "no candidate requests yet"
    unit = "difference" if definition.higher_is_better else "ratio"
    return Verdict.no_data(config, allowed=None, unit=unit, counts=_counts(state), note=note)


def _evidence(
    state: CountGate, track: CountTrack, decider: CountTrack | ClusteredTrack, outcome: Outcome
) -> tuple[str, dict[str, float | None], float | None, float | None]:
    """What both kinds of verdict share: (note, extra numbers, e-value, p-value)."""
    note = ""
    extra = _rates(state)
    if state.baseline_exposure == 0:
        if state.reference_exposure > 0:
            note = (
                "no baseline traffic in this stage: compared with the baseline's "
                f"{state.reference_exposure:,} {metric(state.config.metric).words.exposures} "
                "before it"
            )
            extra["baseline_rate"] = _share(state.reference_events, state.reference_exposure)
        elif outcome is Outcome.INCONCLUSIVE:
            note = "no baseline traffic in this stage to compare with"
    # Without concurrent baseline traffic the ratio test has nothing to say: no e-value.
    by_reference = bool(track.uses_reference[0])
    log_e, max_log_e = float(decider.log_e[0]), float(decider.max_log_e[0])
    e_value = None if by_reference else exp_or_inf(log_e)
    p_value = None if by_reference else min(1.0, exp_or_inf(-max_log_e))
    if track.rule.has_allowance:
        low, high = (float(x[0]) for x in decider.difference_bounds())
        extra["difference_low"], extra["difference_high"] = low, high
    return note, extra, e_value, p_value


def _difference_verdict(
    state: CountGate, track: CountTrack, decider: CountTrack | ClusteredTrack, outcome: Outcome
) -> Verdict:
    """Accuracy: the candidate's minus the baseline's, from the complement's counts."""
    config = state.config
    note, rates, e_value, p_value = _evidence(state, track, decider, outcome)
    extra = {
        "candidate_accuracy": _share(
            state.candidate_exposure - state.candidate_events, state.candidate_exposure
        ),
        "baseline_accuracy": _share(
            state.baseline_exposure - state.baseline_events, state.baseline_exposure
        ),
        **rates,
    }
    estimate = _difference(extra.get("candidate_accuracy"), extra.get("baseline_accuracy"))
    low, high = extra["difference_low"], extra["difference_high"]
    assert low is not None and high is not None  # an absolute allowance always has bounds
    interval, crossed = ordered_interval(-high, -low)
    return Verdict(
        gate=config.key,
        outcome=outcome,
        estimate=estimate,
        interval=interval,
        allowed=-float(config.max_decrease or 0.0),
        e_value=e_value,
        p_value=p_value,
        alpha=config.alpha,
        counts=_counts(state),
        metric=config.metric,
        unit="difference",
        note=join_notes(note, crossed),
        extra=extra,
        method=state.method,
    )


def _ratio_verdict(
    state: CountGate, track: CountTrack, decider: CountTrack | ClusteredTrack, outcome: Outcome
) -> Verdict:
    """A rate: the candidate's over the baseline's."""
    config = state.config
    note, extra, e_value, p_value = _evidence(state, track, decider, outcome)
    lower, upper = (float(x[0]) for x in decider.ratio_bounds())
    interval, crossed = ordered_interval(lower, upper)
    rule = track.rule
    if rule.has_allowance:
        if config.max_increase:
            extra["margin_ratio"] = rule.margin_ratio
        extra["allowance_points"] = float(rule.max_increase_abs or 0.0)
    estimate = float(track.ratio_estimate()[0])
    candidate_rate, baseline_rate = extra["candidate_rate"], extra["baseline_rate"]
    if bool(track.uses_reference[0]) and candidate_rate is not None and baseline_rate:
        estimate = candidate_rate / baseline_rate
    # The clustered test holds the ratio against 1 + m and the difference against d apart.
    allowed = rule.margin_ratio if decider is not track else float(track.fail_ratio()[0])
    return Verdict(
        gate=config.key,
        outcome=outcome,
        estimate=None if math.isnan(estimate) else estimate,
        interval=interval,
        allowed=allowed,
        e_value=e_value,
        p_value=p_value,
        alpha=config.alpha,
        counts=_counts(state),
        metric=config.metric,
        unit="ratio",
        note=join_notes(note, crossed),
        extra=extra,
        method=state.method,
    )


# --- state <-> batched track -------------------------------------------------------------


def _track(state: CountGate) -> CountTrack:
    track = CountTrack(
        rule_for(state.config),
        runs=1,
        reference_events=state.reference_events,
        reference_exposure=state.reference_exposure,
    )
    track.loglik = np.asarray(state.loglik, dtype=np.float64)[None, :]
    track.lower_index = np.array([state.lower_index])
    track.upper_index = np.array([state.upper_index])
    track.log_e = np.array([state.log_e])
    track.max_log_e = np.array([state.max_log_e])
    track.candidate_events = np.array([float(state.candidate_events)])
    track.candidate_exposure = np.array([float(state.candidate_exposure)])
    track.baseline_events = np.array([float(state.baseline_events)])
    track.baseline_exposure = np.array([float(state.baseline_exposure)])
    track.candidate_rate_bounds = tuple(np.array([x]) for x in state.candidate_rate_bounds)
    track.baseline_rate_bounds = tuple(np.array([x]) for x in state.baseline_rate_bounds)
    return track


def _state(previous: CountGate, track: CountTrack) -> CountGate:
    return replace(
        previous,
        loglik=tuple(float(x) for x in track.loglik[0]),
        lower_index=int(track.lower_index[0]),
        upper_index=int(track.upper_index[0]),
        log_e=float(track.log_e[0]),
        max_log_e=float(track.max_log_e[0]),
        candidate_events=round(float(track.candidate_events[0])),
        candidate_exposure=round(float(track.candidate_exposure[0])),
        baseline_events=round(float(track.baseline_events[0])),
        baseline_exposure=round(float(track.baseline_exposure[0])),
        candidate_rate_bounds=(
            float(track.candidate_rate_bounds[0][0]),
            float(track.candidate_rate_bounds[1][0]),
        ),
        baseline_rate_bounds=(
            float(track.baseline_rate_bounds[0][0]),
            float(track.baseline_rate_bounds[1][0]),
        ),
    )


# --- helpers ----------------------------------------------------------------------------


def _counts(state: CountGate) -> dict[str, int]:
    counts = _event_counts(state)
    if state.method == CLUSTERED and state.grouped is not None:
        counts["groups"] = state.grouped.groups
    return counts


def _event_counts(state: CountGate) -> dict[str, int]:
    config = state.config
    definition = metric(config.metric)
    if definition.higher_is_better:
        return {
            "candidate_labelled": state.candidate_exposure,
            "candidate_correct": state.candidate_exposure - state.candidate_events,
            "baseline_labelled": state.baseline_exposure,
            "baseline_correct": state.baseline_exposure - state.baseline_events,
            "min_samples": config.min_samples,
        }
    exposure = definition.tally.exposures if definition.tally else "requests"
    counts = {
        "candidate_events": state.candidate_events,
        f"candidate_{exposure}": state.candidate_exposure,
        "baseline_events": state.baseline_events,
        f"baseline_{exposure}": state.baseline_exposure,
        "min_samples": config.min_samples,
    }
    if state.replayed_failures:
        counts["replayed_failures"] = state.replayed_failures
        counts["baseline_also_failed"] = state.baseline_also_failed
    return counts


def _rates(state: CountGate) -> dict[str, float | None]:
    return {
        "candidate_rate": _share(state.candidate_events, state.candidate_exposure),
        "baseline_rate": _share(state.baseline_events, state.baseline_exposure),
    }


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole > 0 else None


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _float(value: float | str | None, missing: float) -> float:
    parsed = number_in(value)
    return missing if parsed is None else parsed


def _pair(values: list[float]) -> tuple[float, float]:
    return float(values[0]), float(values[1])
