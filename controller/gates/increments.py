"""What accrued between two looks, for the side of the traffic a stage is judged on.

Counters only grow. When one goes down, the endpoint restarted and lost its
counts; that block's increment is taken as zero and the next look counts from
the new reading, so no count is ever negative and nothing is counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from gray.controller.types import Snapshot, VersionCounters

EXPOSURES = ("live", "shadow")


@dataclass(frozen=True)
class Increment:
    """One look's new traffic: the two versions' counters, and mirrored pairs."""

    candidate: VersionCounters
    baseline: VersionCounters
    pairs: int = 0
    disagreements: int = 0


def increment(previous: Snapshot, current: Snapshot, exposure: str) -> Increment:
    """The traffic between two cumulative snapshots, as seen by a `live` or `shadow` stage."""
    if exposure == "shadow":
        candidate = _grown(previous.shadow.candidate, current.shadow.candidate)
        baseline = _grown(previous.shadow.baseline, current.shadow.baseline)
    elif exposure == "live":
        candidate = _grown(previous.candidate, current.candidate)
        baseline = _grown(previous.baseline, current.baseline)
    else:
        raise ValueError(f"exposure must be one of {EXPOSURES}, got {exposure!r}")
    pairs = current.shadow.pairs - previous.shadow.pairs
    disagreements = current.shadow.disagreements - previous.shadow.disagreements
    if pairs < 0 or disagreements < 0:
        pairs, disagreements = 0, 0
    return Increment(candidate, baseline, pairs, min(disagreements, pairs))


def _grown(earlier: VersionCounters, later: VersionCounters) -> VersionCounters:
    if _went_down(earlier, later):
        return VersionCounters()
    return later.minus(earlier)


def _went_down(earlier: VersionCounters, later: VersionCounters) -> bool:
    scalars = ("requests", "errors", "bad_requests", "labelled", "correct")
    if any(getattr(later, name) < getattr(earlier, name) for name in scalars):
        return True
    for before, after in (
        (earlier.slow, later.slow),
        (earlier.latency_buckets, later.latency_buckets),
    ):
        now = dict(after)
        if any(edge in now and now[edge] < count for edge, count in before):
            return True
    return False


def slow_requests(counters: VersionCounters, edge_seconds: float) -> int | None:
    """Requests slower than `edge_seconds`: counted at that edge, or read off the histogram
    when it has that exact edge; None when the source gives no way to know."""
    counted = counters.slow_over(edge_seconds)
    if counted is not None:
        return counted
    buckets = counters.latency_buckets
    if not buckets:
        return None
    total = max(count for _, count in buckets)
    for edge, at_or_below in buckets:
        if abs(edge - edge_seconds) < 1e-9:
            return max(total - at_or_below, 0)
    return None
