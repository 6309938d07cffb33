"""What each scraped series counted: totals that never go down across counter resets,
vanished targets and scrape gaps (the rules are in the package's docstring)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gray.controller.metrics.prometheus.promql import Labels, Series

Target = tuple[str, str]  # a scraped target: its job and instance labels
# When each target's process started, by the time of the scrape that said so (a
# counter sample and the start time from the same scrape carry the same time).
StartTimes = Mapping[Target, Mapping[float, float]]


def target_of(labels: Labels) -> Target:
    named = dict(labels)
    return named.get("job", ""), named.get("instance", "")


def start_times(series: Iterable[Series]) -> dict[Target, dict[float, float]]:
    """The samples of a start-time gauge, by target and scrape time."""
    found: dict[Target, dict[float, float]] = {}
    for one in series:
        found.setdefault(target_of(one.labels), {}).update(one.samples)
    return found


@dataclass
class _Track:
    value: float  # the newest sample counted
    at: float  # its time; samples at or before it are already counted
    counted: float  # what this series adds to the totals
    started: float | None  # when the process that counted `value` started, if known


@dataclass
class SeriesLedger:
    """What each series counted, by query; totals that never go down (module docstring)."""

    _tracks: dict[tuple[str, Labels], _Track] = field(default_factory=dict)

    def clear(self) -> None:
        self._tracks.clear()

    def start(self, query: str, levels: Iterable[Series], starts: StartTimes | None = None) -> None:
        """Every series' level at the first look: what it counts from."""
        self._tracks = {key: t for key, t in self._tracks.items() if key[0] != query}
        for series in levels:
            at, value = series.samples[-1]
            started = _latest((starts or {}).get(target_of(series.labels)))
            self._tracks[(query, series.labels)] = _Track(value, at, value, started)

    def advance(
        self, query: str, recent: Iterable[Series], starts: StartTimes | None = None
    ) -> None:
        """Count each series' samples newer than the last it counted. A fall is a reset;
        so is a new start time of the series' target, which also catches a restarted
        target whose counter climbed past its old value before its first scrape."""
        for series in recent:
            key = (query, series.labels)
            target_starts = (starts or {}).get(target_of(series.labels)) or {}
            track = self._tracks.get(key)
            for at, value in series.samples:
                started = target_starts.get(at)
                if track is None:
                    # A series first seen now is new: its counter started from zero.
                    track = self._tracks[key] = _Track(value, at, value, started)
                elif at > track.at:
                    rise = value - track.value
                    restarted = None not in (started, track.started) and started != track.started
                    track.counted += value if restarted or rise < 0 else rise
                    track.value, track.at = value, at
                    track.started = started if started is not None else track.started

    def counted(self, query: str) -> list[tuple[Labels, float]]:
        return [(labels, t.counted) for (name, labels), t in self._tracks.items() if name == query]


def _latest(samples: Mapping[float, float] | None) -> float | None:
    return samples[max(samples)] if samples else None
