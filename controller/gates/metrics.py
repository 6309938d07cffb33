"""The gate metrics: one row per metric a plan may name, read by everything that knows gates.

The plan takes its allowed metric names from `METRICS`, its per-metric field checks
from `margins` and `needs_slo`; the judge picks the gate family that judges a
metric from `family`, and the stage which gates apply from `needs_pairs`; the
count family reads each version's events and exposures through `tally`; verdicts
are worded with `words`. Adding a metric is one row here (plus a family in
`families/` when it is a new kind of test).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gray.controller.gates.increments import slow_requests
from gray.controller.plan.units import format_duration
from gray.controller.types import GroupCounts, VersionCounters

# Events one version had, given the gate's latency edge (None for gates without one);
# None when the metrics source has no way to know them.
EventReader = Callable[[VersionCounters, float | None], int | None]
# The same per hash group of the routing key, from the version's group counts.
GroupEventReader = Callable[[GroupCounts, float | None], tuple[int, ...] | None]


@dataclass(frozen=True)
class Tally:
    """How a count metric reads one version's counters: events out of exposures."""

    events: EventReader
    exposures: str  # the VersionCounters (and GroupCounts) field the events are out of
    group_events: GroupEventReader

    def read(self, counters: VersionCounters, slo: float | None) -> tuple[int, int] | None:
        """(events, exposures), or None when the source cannot count the events."""
        events = self.events(counters, slo)
        if events is None:
            return None
        return events, int(getattr(counters, self.exposures))

    def read_groups(
        self, counters: VersionCounters, slo: float | None
    ) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
        """(events, exposures) per hash group, or None when the source has no group counts
        for them."""
        if counters.groups is None:
            return None
        events = self.group_events(counters.groups, slo)
        if events is None:
            return None
        return events, tuple(getattr(counters.groups, self.exposures))


@dataclass(frozen=True)
class Words:
    """How a verdict names the metric, its events and its exposures."""

    measured: str  # "error rate"
    events: str  # "errors"
    exposures: str  # "requests"


@dataclass(frozen=True)
class MetricDefinition:
    name: str
    family: str  # the gate family that judges it (`families.FAMILIES`)
    reads: tuple[str, ...]  # the snapshot counters it reads
    margins: tuple[str, ...]  # the margin fields it takes; a plan's gate sets at least one
    words: Words
    tally: Tally | None = None  # count metrics: events and exposures per version
    needs_slo: bool = False  # counts requests over the gate's `slo` edge
    needs_labels: bool = False  # judged on labelled predictions only
    needs_pairs: bool = False  # judged on mirrored pairs: no pairs without a mirror
    higher_is_better: bool = False  # counts the complement (wrong predictions for accuracy)
    counts_replays: bool = False  # reports the candidate's failures replayed on the baseline

    def key(self, slo: float | None) -> str:
        """The gate's name in a plan's stage and in verdicts: `latency<250ms`."""
        if self.needs_slo and slo is not None:
            return f"{self.name}<{format_duration(slo)}"
        return self.name


def _errors(counters: VersionCounters, slo: float | None) -> int | None:
    return counters.errors


def _bad_requests(counters: VersionCounters, slo: float | None) -> int | None:
    return counters.bad_requests


def _slow(counters: VersionCounters, slo: float | None) -> int | None:
    if not counters.requests:
        return 0
    count = slow_requests(counters, float(slo or 0.0))
    return None if count is None else min(count, counters.requests)


def _wrong_predictions(counters: VersionCounters, slo: float | None) -> int | None:
    return max(counters.labelled - counters.correct, 0)


def _group_errors(groups: GroupCounts, slo: float | None) -> tuple[int, ...] | None:
    return groups.errors


def _group_bad_requests(groups: GroupCounts, slo: float | None) -> tuple[int, ...] | None:
    return groups.bad_requests


def _group_slow(groups: GroupCounts, slo: float | None) -> tuple[int, ...] | None:
    slower = groups.slow_over(float(slo or 0.0))
    if slower is None:
        return None
    return tuple(min(count, total) for count, total in zip(slower, groups.requests, strict=True))


def _group_wrong_predictions(groups: GroupCounts, slo: float | None) -> tuple[int, ...] | None:
    return tuple(
        max(labelled - correct, 0)
        for labelled, correct in zip(groups.labelled, groups.correct, strict=True)
    )


_RELATIVE = ("max_increase", "max_increase_abs")

METRICS: dict[str, MetricDefinition] = {
    definition.name: definition
    for definition in (
        MetricDefinition(
            name="error_rate",
            family="count",
            reads=("requests", "errors", "replayed_failures", "baseline_also_failed"),
            margins=_RELATIVE,
            words=Words("error rate", "errors", "requests"),
            tally=Tally(_errors, "requests", _group_errors),
            counts_replays=True,
        ),
        MetricDefinition(
            name="bad_request_rate",
            family="count",
            reads=("requests", "bad_requests"),
            margins=_RELATIVE,
            words=Words("bad-request rate", "bad requests", "requests"),
            tally=Tally(_bad_requests, "requests", _group_bad_requests),
        ),
        MetricDefinition(
            name="latency",
            family="count",
            reads=("requests", "slow", "latency_buckets"),
            margins=_RELATIVE,
            words=Words("slow-request rate", "slow requests", "requests"),
            tally=Tally(_slow, "requests", _group_slow),
            needs_slo=True,
        ),
        MetricDefinition(
            name="latency_distribution",
            family="shift",
            reads=("latency_buckets",),
            margins=("tolerance",),
            words=Words("latency distribution", "", "requests"),
        ),
        MetricDefinition(
            name="accuracy",
            family="count",
            reads=("labelled", "correct"),
            margins=("max_decrease",),
            words=Words("accuracy", "wrong predictions", "labelled predictions"),
            tally=Tally(_wrong_predictions, "labelled", _group_wrong_predictions),
            needs_labels=True,
            higher_is_better=True,
        ),
        MetricDefinition(
            name="wrong_prediction_rate",
            family="count",
            reads=("labelled", "correct"),
            margins=_RELATIVE,
            words=Words("wrong-prediction rate", "wrong predictions", "labelled predictions"),
            tally=Tally(_wrong_predictions, "labelled", _group_wrong_predictions),
            needs_labels=True,
        ),
        MetricDefinition(
            name="disagreement",
            family="share",
            reads=("shadow.pairs", "shadow.disagreements"),
            margins=("max",),
            words=Words("shadow disagreement", "disagreements", "mirrored pairs"),
            needs_pairs=True,
        ),
    )
}
METRIC_NAMES: tuple[str, ...] = tuple(METRICS)


def metric(name: str) -> MetricDefinition:
    """The row for `name`; a KeyError names the known metrics."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"no gate metric {name!r}; known: {', '.join(METRIC_NAMES)}") from None
