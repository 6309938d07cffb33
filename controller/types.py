"""Value objects that cross gray's seams: routes, leases and metric snapshots.

They are plain frozen dataclasses with `to_dict` / `from_dict` so that the same
shapes travel over the gateway's admin API, into the journal and into tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Audience:
    """Which requests may reach the candidate at all. Empty means everyone.

    A request matches when its client address is in one of `cidr` (if any are
    given) and, for each header rule, the header equals the value or is one of
    the listed values. All given rules must match.
    """

    cidr: tuple[str, ...] = ()
    headers: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def is_everyone(self) -> bool:
        return not self.cidr and not self.headers

    def to_dict(self) -> dict[str, Any]:
        return {"cidr": list(self.cidr), "headers": {k: list(v) for k, v in self.headers}}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Audience:
        if not data:
            return cls()
        headers = data.get("headers") or {}
        return cls(
            cidr=tuple(data.get("cidr") or ()),
            headers=tuple(
                sorted(
                    (str(k), tuple(str(x) for x in (v if isinstance(v, list) else [v])))
                    for k, v in headers.items()
                )
            ),
        )


@dataclass(frozen=True)
class Lease:
    """Who may write routes: a rollout id and an epoch that only grows."""

    rollout_id: str
    epoch: int

    def to_dict(self) -> dict[str, Any]:
        return {"rollout_id": self.rollout_id, "epoch": self.epoch}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Lease:
        return cls(rollout_id=str(data["rollout_id"]), epoch=int(data["epoch"]))


@dataclass(frozen=True)
class RouteSpec:
    """A traffic split: the share of traffic the candidate answers, and mirrored."""

    baseline: str
    candidate: str | None = None
    weight: float = 0.0
    mirror: float = 0.0
    audience: Audience = field(default_factory=Audience)

    def rolled_back(self) -> RouteSpec:
        """The same pair with every request answered by the baseline."""
        return replace(self, weight=0.0, mirror=0.0, audience=Audience())

    def same_split(self, other: RouteSpec, tolerance: float = 1e-9) -> bool:
        return (
            self.baseline == other.baseline
            and (self.candidate or None) == (other.candidate or None)
            and abs(self.weight - other.weight) <= tolerance
            and abs(self.mirror - other.mirror) <= tolerance
            and self.audience == other.audience
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "candidate": self.candidate,
            "weight": self.weight,
            "mirror": self.mirror,
            "audience": self.audience.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RouteSpec:
        return cls(
            baseline=str(data["baseline"]),
            candidate=None if data.get("candidate") in (None, "") else str(data["candidate"]),
            weight=float(data.get("weight", 0.0)),
            mirror=float(data.get("mirror", 0.0)),
            audience=Audience.from_dict(data.get("audience")),
        )


@dataclass(frozen=True)
class Applied:
    """What a router write left in force, with the lease that now holds it."""

    route: RouteSpec
    lease: Lease | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "route": self.route.to_dict(),
            "lease": self.lease.to_dict() if self.lease else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Applied:
        lease = data.get("lease")
        return cls(
            route=RouteSpec.from_dict(data["route"]),
            lease=Lease.from_dict(lease) if lease else None,
        )


@dataclass(frozen=True)
class Pair:
    """The two model versions a rollout compares."""

    baseline: str
    candidate: str


ROUTING_GROUPS = 64
"""Hash groups of the routing key: a key's group is `bucket_of(key) % ROUTING_GROUPS`.

Each group is a fixed set of whole routing buckets spread evenly over the bucket
range, so a group is a unit of randomisation (every request of a key lands in
the same group) and any candidate weight gives each group a near-equal share of
the candidate's buckets.
"""


def _zeros() -> tuple[int, ...]:
    return (0,) * ROUTING_GROUPS


def _group_series(values: Any, where: str) -> tuple[int, ...]:
    """One per-group series read from a dict; a missing series is all zeros."""
    if values is None:
        return _zeros()
    series = tuple(int(v) for v in values)
    if len(series) != ROUTING_GROUPS:
        raise ValueError(
            f"{where}: {len(series)} values, expected one per group ({ROUTING_GROUPS})"
        )
    return series


def _subtract(later: tuple[int, ...], earlier: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(a - b for a, b in zip(later, earlier, strict=True))


def _add(one: tuple[int, ...], other: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(a + b for a, b in zip(one, other, strict=True))


@dataclass(frozen=True)
class GroupCounts:
    """Cumulative counters of one version split by hash group of the routing key.

    Every series holds one int per group g = 0..ROUTING_GROUPS-1. `slow` pairs a
    latency edge in seconds with the per-group number of requests slower than it.
    """

    requests: tuple[int, ...] = field(default_factory=_zeros)
    errors: tuple[int, ...] = field(default_factory=_zeros)
    bad_requests: tuple[int, ...] = field(default_factory=_zeros)
    labelled: tuple[int, ...] = field(default_factory=_zeros)
    correct: tuple[int, ...] = field(default_factory=_zeros)
    slow: tuple[tuple[float, tuple[int, ...]], ...] = ()

    def slow_over(self, edge_seconds: float) -> tuple[int, ...] | None:
        """Per-group requests slower than `edge_seconds`, or None when that edge is not counted."""
        for edge, counts in self.slow:
            if abs(edge - edge_seconds) < 1e-9:
                return counts
        return None

    def minus(self, earlier: GroupCounts) -> GroupCounts:
        """What accrued in each group between `earlier` and this reading."""
        before_slow = dict(earlier.slow)
        return GroupCounts(
            requests=_subtract(self.requests, earlier.requests),
            errors=_subtract(self.errors, earlier.errors),
            bad_requests=_subtract(self.bad_requests, earlier.bad_requests),
            labelled=_subtract(self.labelled, earlier.labelled),
            correct=_subtract(self.correct, earlier.correct),
            slow=tuple(
                (edge, _subtract(counts, before_slow.get(edge, _zeros())))
                for edge, counts in self.slow
            ),
        )

    def plus(self, other: GroupCounts) -> GroupCounts:
        """Two readings added group by group (replicas of a fleet, a series across a restart).
        A latency edge only one side counts is left out: the other side's count is unknown."""
        other_slow = dict(other.slow)
        return GroupCounts(
            requests=_add(self.requests, other.requests),
            errors=_add(self.errors, other.errors),
            bad_requests=_add(self.bad_requests, other.bad_requests),
            labelled=_add(self.labelled, other.labelled),
            correct=_add(self.correct, other.correct),
            slow=tuple(
                (edge, _add(counts, other_slow[edge]))
                for edge, counts in self.slow
                if edge in other_slow
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        """Series that are all zeros are left out (they read back as zeros)."""
        out: dict[str, Any] = {}
        for name in ("requests", "errors", "bad_requests", "labelled", "correct"):
            series = getattr(self, name)
            if any(series):
                out[name] = list(series)
        if self.slow:
            out["slow"] = [[edge, list(counts)] for edge, counts in self.slow]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroupCounts:
        return cls(
            requests=_group_series(data.get("requests"), "groups.requests"),
            errors=_group_series(data.get("errors"), "groups.errors"),
            bad_requests=_group_series(data.get("bad_requests"), "groups.bad_requests"),
            labelled=_group_series(data.get("labelled"), "groups.labelled"),
            correct=_group_series(data.get("correct"), "groups.correct"),
            slow=tuple(
                (float(edge), _group_series(counts, f"groups.slow[{edge}]"))
                for edge, counts in data.get("slow", [])
            ),
        )


@dataclass(frozen=True)
class VersionCounters:
    """Cumulative counters for one model version, since the endpoint started.

    `latency_buckets` is a cumulative histogram: (upper edge in seconds, number of
    requests at or below it), edges ascending, the last edge `inf`.
    `slow` maps a latency edge in seconds to the number of requests slower than it.
    `groups` splits the same counts by hash group of the routing key, when the
    source can tell (None when it cannot).
    """

    requests: int = 0
    errors: int = 0
    bad_requests: int = 0
    latency_buckets: tuple[tuple[float, int], ...] = ()
    slow: tuple[tuple[float, int], ...] = ()
    labelled: int = 0
    correct: int = 0
    # Failures replayed on the baseline by the endpoint, and how many failed there too.
    replayed_failures: int = 0
    baseline_also_failed: int = 0
    groups: GroupCounts | None = None

    def slow_over(self, edge_seconds: float) -> int | None:
        """Requests slower than `edge_seconds`, or None when that edge is not counted."""
        for edge, count in self.slow:
            if abs(edge - edge_seconds) < 1e-9:
                return count
        return None

    def minus(self, earlier: VersionCounters) -> VersionCounters:
        """What accrued between `earlier` and this reading."""
        before_buckets = dict(earlier.latency_buckets)
        before_slow = dict(earlier.slow)
        return VersionCounters(
            requests=self.requests - earlier.requests,
            errors=self.errors - earlier.errors,
            bad_requests=self.bad_requests - earlier.bad_requests,
            latency_buckets=tuple(
                (edge, count - before_buckets.get(edge, 0)) for edge, count in self.latency_buckets
            ),
            slow=tuple((edge, count - before_slow.get(edge, 0)) for edge, count in self.slow),
            labelled=self.labelled - earlier.labelled,
            correct=self.correct - earlier.correct,
            replayed_failures=self.replayed_failures - earlier.replayed_failures,
            baseline_also_failed=self.baseline_also_failed - earlier.baseline_also_failed,
            groups=(
                self.groups.minus(earlier.groups)
                if self.groups is not None and earlier.groups is not None
                else None
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests": self.requests,
            "errors": self.errors,
            "bad_requests": self.bad_requests,
            "latency_buckets": [[_edge_out(e), c] for e, c in self.latency_buckets],
            "slow": [[e, c] for e, c in self.slow],
            "labelled": self.labelled,
            "correct": self.correct,
            "replayed_failures": self.replayed_failures,
            "baseline_also_failed": self.baseline_also_failed,
        }
        if self.groups is not None:
            out["groups"] = self.groups.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VersionCounters:
        return cls(
            requests=int(data.get("requests", 0)),
            errors=int(data.get("errors", 0)),
            bad_requests=int(data.get("bad_requests", 0)),
            latency_buckets=tuple(
                (_edge_in(e), int(c)) for e, c in data.get("latency_buckets", [])
            ),
            slow=tuple((float(e), int(c)) for e, c in data.get("slow", [])),
            labelled=int(data.get("labelled", 0)),
            correct=int(data.get("correct", 0)),
            replayed_failures=int(data.get("replayed_failures", 0)),
            baseline_also_failed=int(data.get("baseline_also_failed", 0)),
            groups=(
                GroupCounts.from_dict(data["groups"]) if data.get("groups") is not None else None
            ),
        )


@dataclass(frozen=True)
class ShadowCounters:
    """Cumulative counters of mirrored requests for one candidate version.

    Every mirrored request was answered by the baseline (`baseline`) and also,
    off the response path, by the candidate (`candidate`); `pairs` of them
    completed on both sides and `disagreements` of those pairs differ in output.
    """

    pairs: int = 0
    disagreements: int = 0
    baseline: VersionCounters = field(default_factory=VersionCounters)
    candidate: VersionCounters = field(default_factory=VersionCounters)

    def minus(self, earlier: ShadowCounters) -> ShadowCounters:
        return ShadowCounters(
            pairs=self.pairs - earlier.pairs,
            disagreements=self.disagreements - earlier.disagreements,
            baseline=self.baseline.minus(earlier.baseline),
            candidate=self.candidate.minus(earlier.candidate),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs,
            "disagreements": self.disagreements,
            "baseline": self.baseline.to_dict(),
            "candidate": self.candidate.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShadowCounters:
        return cls(
            pairs=int(data.get("pairs", 0)),
            disagreements=int(data.get("disagreements", 0)),
            baseline=VersionCounters.from_dict(data.get("baseline", {})),
            candidate=VersionCounters.from_dict(data.get("candidate", {})),
        )


@dataclass(frozen=True)
class Snapshot:
    """Cumulative counters for a pair of versions, read at `taken_at` (unix seconds).

    `baseline` / `candidate` count the traffic each version answered for users;
    `shadow` counts requests mirrored to the candidate. Gates work on the
    difference of two snapshots (see `minus`), so a look costs O(1).
    """

    taken_at: float
    baseline: VersionCounters = field(default_factory=VersionCounters)
    candidate: VersionCounters = field(default_factory=VersionCounters)
    shadow: ShadowCounters = field(default_factory=ShadowCounters)

    def minus(self, earlier: Snapshot) -> Snapshot:
        """The traffic that accrued between `earlier` and this snapshot."""
        return Snapshot(
            taken_at=self.taken_at,
            baseline=self.baseline.minus(earlier.baseline),
            candidate=self.candidate.minus(earlier.candidate),
            shadow=self.shadow.minus(earlier.shadow),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "taken_at": self.taken_at,
            "baseline": self.baseline.to_dict(),
            "candidate": self.candidate.to_dict(),
            "shadow": self.shadow.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Snapshot:
        return cls(
            taken_at=float(data["taken_at"]),
            baseline=VersionCounters.from_dict(data.get("baseline", {})),
            candidate=VersionCounters.from_dict(data.get("candidate", {})),
            shadow=ShadowCounters.from_dict(data.get("shadow", {})),
        )


def _edge_out(edge: float) -> float | str:
    return "+Inf" if edge == float("inf") else edge


def _edge_in(edge: float | str) -> float:
    return float("inf") if edge in ("+Inf", "inf", "Infinity") else float(edge)
