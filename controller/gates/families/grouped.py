"""A count gate's evidence by hash group of the routing key (see `stats/clustered.py`).

The count gate keeps it beside its per-request evidence while every look with
traffic brings group counts for both versions; the state is the per-group
totals of the stage (four series of one int per group) and the clustered
test's running bounds, so it has a fixed size whatever the number of looks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from gray.controller.gates.stats.clustered import ClusteredTrack
from gray.controller.gates.stats.counts import CountRule
from gray.controller.gates.verdict import number_in, number_out

Series = tuple[int, ...]


@dataclass(frozen=True)
class GroupedEvidence:
    """Per-group totals of a stage and the clustered test's running bounds."""

    candidate_events: Series
    candidate_exposure: Series
    baseline_events: Series
    baseline_exposure: Series
    lower_index: int = -1
    upper_index: int = -1  # -1 until the first look sets it from the grid's size
    difference_lower_index: int = -1
    difference_upper_index: int = -1
    log_e: float = 0.0
    max_log_e: float = -math.inf

    @property
    def groups(self) -> int:
        return len(self.candidate_events)

    @classmethod
    def empty(cls, groups: int) -> GroupedEvidence:
        zeros = (0,) * groups
        return cls(zeros, zeros, zeros, zeros)

    def added(
        self,
        rule: CountRule,
        candidate: tuple[Series, Series],
        baseline: tuple[Series, Series],
    ) -> GroupedEvidence:
        """The evidence after one look's per-group (events, exposures) of both versions."""
        track = self.track(rule)
        track.add(
            np.array([candidate[0]], dtype=np.float64),
            np.array([candidate[1]], dtype=np.float64),
            np.array([baseline[0]], dtype=np.float64),
            np.array([baseline[1]], dtype=np.float64),
        )
        return GroupedEvidence(
            candidate_events=_series(track.candidate_events),
            candidate_exposure=_series(track.candidate_exposure),
            baseline_events=_series(track.baseline_events),
            baseline_exposure=_series(track.baseline_exposure),
            lower_index=int(track.lower_index[0]),
            upper_index=int(track.upper_index[0]),
            difference_lower_index=int(track.difference_lower_index[0]),
            difference_upper_index=int(track.difference_upper_index[0]),
            log_e=float(track.log_e[0]),
            max_log_e=float(track.max_log_e[0]),
        )

    def track(self, rule: CountRule) -> ClusteredTrack:
        """A one-row `ClusteredTrack` holding this evidence."""
        track = ClusteredTrack(rule, runs=1, groups=self.groups)
        track.candidate_events = np.array([self.candidate_events], dtype=np.float64)
        track.candidate_exposure = np.array([self.candidate_exposure], dtype=np.float64)
        track.baseline_events = np.array([self.baseline_events], dtype=np.float64)
        track.baseline_exposure = np.array([self.baseline_exposure], dtype=np.float64)
        track.lower_index = np.array([self.lower_index])
        if self.upper_index >= 0:
            track.upper_index = np.array([self.upper_index])
        track.difference_lower_index = np.array([self.difference_lower_index])
        if self.difference_upper_index >= 0:
            track.difference_upper_index = np.array([self.difference_upper_index])
        track.log_e = np.array([self.log_e])
        track.max_log_e = np.array([self.max_log_e])
        return track

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate_events": list(self.candidate_events),
            "candidate_exposure": list(self.candidate_exposure),
            "baseline_events": list(self.baseline_events),
            "baseline_exposure": list(self.baseline_exposure),
            "lower_index": self.lower_index,
            "upper_index": self.upper_index,
            "difference_lower_index": self.difference_lower_index,
            "difference_upper_index": self.difference_upper_index,
            "log_e": number_out(self.log_e),
            "max_log_e": number_out(self.max_log_e),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroupedEvidence:
        log_e = number_in(data.get("log_e"))
        max_log_e = number_in(data.get("max_log_e"))
        return cls(
            candidate_events=_ints(data["candidate_events"]),
            candidate_exposure=_ints(data["candidate_exposure"]),
            baseline_events=_ints(data["baseline_events"]),
            baseline_exposure=_ints(data["baseline_exposure"]),
            lower_index=int(data.get("lower_index", -1)),
            upper_index=int(data.get("upper_index", -1)),
            difference_lower_index=int(data.get("difference_lower_index", -1)),
            difference_upper_index=int(data.get("difference_upper_index", -1)),
            log_e=0.0 if log_e is None else log_e,
            max_log_e=-math.inf if max_log_e is None else max_log_e,
        )


def _series(row: np.ndarray) -> Series:
    return tuple(round(float(x)) for x in row[0])


def _ints(values: list[Any]) -> Series:
    return tuple(int(v) for v in values)
