"""What a gate can detect in a stage: the smallest regression it catches with 80 % probability
within the stage's looks, how long it takes to catch a 2x regression, and how often it
passes a candidate identical to the baseline.

Nothing here is a formula about the gates: each number comes from simulated looks fed to
the very kernels the gates run (`CountTrack` with the gate's `rule_for`, `ShiftTrack`, the
proportion test the share gate runs), so it follows any change to them. A simulation is
seeded, so the same gate and traffic always give the same numbers (the loop stays pure).

A regression is measured in the gate's unit:

- `ratio` (count gates): the candidate's event rate over the baseline's; for accuracy,
  the candidate's wrong-prediction rate over the baseline's. "2x" doubles it;
- `shift` (latency distribution): how far the candidate's latency CDF lies below the
  baseline's, simulated where it is steepest (half the requests below an edge);
  "2x" is twice the tolerance;
- `rate` (shadow disagreement): the share of mirrored pairs that disagree; "2x" is twice
  the allowed maximum.

Requests are simulated as independent (Poisson arrivals, each an event with the rate);
a stage is simulated in at most `MAX_LOOKS` looks, neighbouring looks taken together,
which can only make a gate look slower than it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gray.controller.gates.config import GateConfig
from gray.controller.gates.families import GateFamily
from gray.controller.gates.families.count import rule_for
from gray.controller.gates.metrics import metric
from gray.controller.gates.stage import JudgeState
from gray.controller.gates.stats import proportion
from gray.controller.gates.stats.cdf import ShiftTrack
from gray.controller.gates.stats.clustered import ClusteredTrack
from gray.controller.gates.stats.counts import CountTrack
from gray.controller.gates.stats.special import Array
from gray.controller.gates.verdict import Outcome, StageVerdict, Verdict

POWER = 0.8  # "detected": caught within the stage this often
MAX_LOOKS = 16
SCAN_ROWS = 16  # simulated stages spread over the whole range of regressions
FOCUS_ROWS = 24  # then over the range where the chance of catching goes from low to high
DOUBLE_ROWS = 24  # at a 2x regression, for the time to catch it
ALIKE_ROWS = 16  # with a candidate identical to the baseline, for the chance to pass
LARGEST_RATIO = 64.0  # the ratio test's grid ends here
SEED = 14


@dataclass(frozen=True)
class GateTraffic:
    """What one gate of a stage sees per look, and for how many looks.

    `candidate` / `baseline`: exposures per look (requests; labelled predictions for
    accuracy and wrong predictions; mirrored pairs for a shadow stage and for the
    disagreement gate). `reference`: the baseline's exposures before the stage, which a
    stage without concurrent baseline traffic (weight 100 %) compares with."""

    candidate: float
    baseline: float
    looks: int
    interval: float  # seconds per look
    reference: float = 0.0
    paired: bool = False  # both versions answered the same requests (a shadow stage)
    # Hash groups of the routing key the source counts (0: none). A count gate with group
    # counts for both versions decides by the clustered test, as the gate itself does.
    groups: int = 0


@dataclass(frozen=True)
class Detectability:
    """What one gate can detect with the traffic it is given (see the module's units)."""

    gate: str
    metric: str
    unit: str
    base: float  # the baseline's rate the simulation used (0 for a latency shift)
    allowed: float  # the gate's allowance in the unit: 1.1 (ratio), the tolerance, the max
    smallest: float | None  # caught with POWER probability; None: not even at `largest`
    largest: float  # the largest regression simulated
    double: float  # the "2x" regression
    power_at_double: float
    median_seconds_at_double: float | None  # None: caught in fewer than half the stages
    passes_alike: float  # share of stages an identical candidate PASSes by the last look
    # The test a count gate decided by: `clustered` (per routing-key group) or `per_request`.
    method: str = ""

    @property
    def reaches_margin(self) -> bool:
        """Whether an identical candidate passes within the stage POWER of the time."""
        return self.passes_alike >= POWER

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "metric": self.metric,
            "unit": self.unit,
            "base_rate": self.base,
            "allowed": self.allowed,
            "smallest_detected": self.smallest,
            "largest_simulated": self.largest,
            "power": POWER,
            "double": self.double,
            "power_at_double": self.power_at_double,
            "median_seconds_at_double": self.median_seconds_at_double,
            "passes_alike": self.passes_alike,
            "reaches_margin": self.reaches_margin,
            "method": self.method,
        }


# A simulation: regressions, one per simulated stage, and which item's traffic each row has
# -> (the first look that failed, or -1; the first look from which it passed, or -1 when
# it never did or failed).
Simulation = Callable[[Array, Array], tuple[Array, Array]]


def detectability(config: GateConfig, traffic: GateTraffic, base: float) -> Detectability:
    """Simulate `config`'s gate with `traffic` at the baseline rate `base` (for a count
    gate its event rate, for disagreement the rate an identical candidate has)."""
    return detectabilities(config, [(traffic, base)])[0]


def detectabilities(
    config: GateConfig, items: list[tuple[GateTraffic, float]]
) -> list[Detectability]:
    """`detectability` for one gate in several stages (traffic and base rate each), with
    the stages simulated side by side (one batch of rows per test the gate decides by)."""
    family = metric(config.metric).family
    methods = [_groups(config, traffic) for traffic, _ in items]
    if len(set(methods)) > 1:
        results: dict[int, Detectability] = {}
        for groups in set(methods):
            chosen = [i for i, method in enumerate(methods) if method == groups]
            found = detectabilities(config, [items[i] for i in chosen])
            results.update(zip(chosen, found, strict=True))
        return [results[i] for i in range(len(items))]
    rows = _Rows.of(items, methods[0])
    simulate = _simulation(config, rows, np.random.default_rng(SEED))
    ranges = [_range(config, base) for _, base in items]
    # Per item: DOUBLE_ROWS at 2x, ALIKE_ROWS with an identical candidate, then a scan.
    batches = []
    for (_, base), (low, allowed, high) in zip(items, ranges, strict=True):
        double = min(2.0 if family == "count" else 2.0 * allowed, high)
        alike = {"count": 1.0, "shift": 0.0}.get(family, base)
        scan = np.geomspace(low, high, SCAN_ROWS) if low < high else np.empty(0)
        batches.append(np.concatenate([[double] * DOUBLE_ROWS, [alike] * ALIKE_ROWS, scan]))
    owners = np.concatenate([np.full(b.size, i) for i, b in enumerate(batches)])
    first, passed = simulate(np.concatenate(batches), owners)
    results, scans = [], []
    for index, batch in enumerate(batches):
        own = owners == index
        own_first, own_passed = first[own], passed[own]
        caught = own_first[:DOUBLE_ROWS]
        if batch.size > DOUBLE_ROWS + ALIKE_ROWS:
            scans.append((index, batch[DOUBLE_ROWS + ALIKE_ROWS :], own_first >= 0))
        results.append(
            Detectability(
                gate=config.key,
                metric=config.metric,
                unit={"count": "ratio", "shift": "shift"}.get(family, "rate"),
                base=items[index][1],
                allowed=ranges[index][1],
                smallest=None,
                largest=ranges[index][2],
                double=float(batch[0]),
                power_at_double=float(np.mean(caught >= 0)),
                median_seconds_at_double=_median_seconds(caught, rows.look_seconds[index]),
                passes_alike=float(
                    np.mean(own_passed[DOUBLE_ROWS : DOUBLE_ROWS + ALIKE_ROWS] >= 0)
                ),
                method=_method(family, rows.groups),
            )
        )
    scans = [(i, x, hit[DOUBLE_ROWS + ALIKE_ROWS :]) for i, x, hit in scans]
    for index, smallest in _smallest(simulate, scans, ranges).items():
        results[index] = replace(results[index], smallest=smallest)
    return results


def passing_seconds(
    config: GateConfig, items: list[tuple[GateTraffic, float]], runs: int, max_looks: int
) -> list[Array]:
    """For each item (traffic, base rate), `runs` simulated stages with a candidate identical
    to the baseline: the seconds into the stage of the look from which the gate passes
    (inf: not within the stage's looks). Looks are taken together up to `max_looks`."""
    methods = [_groups(config, traffic) for traffic, _ in items]
    if len(set(methods)) > 1:
        return [passing_seconds(config, [item], runs, max_looks)[0] for item in items]
    rows = _Rows.of(items, methods[0], max_looks)
    family = metric(config.metric).family
    owners = np.repeat(np.arange(len(items)), runs)
    alike = np.array([{"count": 1.0, "shift": 0.0}.get(family, base) for _, base in items])
    _, passed = _simulation(config, rows, np.random.default_rng(SEED))(alike[owners], owners)
    seconds = np.where(passed >= 0, (passed + 1) * rows.look_seconds[owners], np.inf)
    return list(seconds.reshape(len(items), runs))


def _simulation(config: GateConfig, rows: _Rows, rng: np.random.Generator) -> Simulation:
    family = metric(config.metric).family
    if family == "count":
        return _count_simulation(config, rows, rng)
    if family == "shift":
        return _shift_simulation(config, rows, rng)
    return _share_simulation(config, rows, rng)


def _method(family: str, groups: int) -> str:
    if family != "count":
        return ""
    return "clustered" if groups else "per_request"


def _groups(config: GateConfig, traffic: GateTraffic) -> int:
    """The groups a count gate decides by: its source's, when both versions have traffic
    in the stage (without concurrent baseline traffic the gate tests per request)."""
    concurrent = traffic.baseline > 0 or traffic.paired
    counted = metric(config.metric).family == "count" and traffic.groups >= 2
    return traffic.groups if counted and concurrent else 0


def _range(config: GateConfig, base: float) -> tuple[float, float, float]:
    """(the smallest regression worth simulating, the allowance, the largest), in the unit."""
    family = metric(config.metric).family
    if family == "count":
        rule = rule_for(config)
        allowed = rule.margin_ratio
        if rule.has_allowance and base > 0:
            allowed = max(allowed, 1.0 + rule.allowance / base)
        high = min(LARGEST_RATIO, 1.0 / base) if base > 0 else LARGEST_RATIO
    elif family == "shift":
        allowed, high = float(config.tolerance or 0.0), 0.5
    else:
        allowed, high = float(config.max or 0.0), 1.0
    low = allowed * 1.02 if allowed > 0 else high / 1000.0
    return low, allowed, high


def _smallest(
    simulate: Simulation,
    scans: list[tuple[int, Array, Array]],
    ranges: list[tuple[float, float, float]],
) -> dict[int, float | None]:
    """The smallest regression caught POWER of the time, per item: from its scan over the
    whole range, then a closer look where the chance of catching climbs, read off a
    monotone fit of both."""
    found: dict[int, float | None] = {}
    focused: list[tuple[int, Array, Array, Array]] = []
    for index, scanned, caught in scans:
        fitted = _monotone(caught.astype(float))
        if fitted[-1] < POWER:
            found[index] = None
            continue
        below, above = scanned[fitted < 0.3], scanned[fitted >= 0.97]
        start = float(below[-1]) if below.size else ranges[index][0]
        end = float(above[0]) if above.size else ranges[index][2]
        focus = np.geomspace(start, max(end, start * 1.001), FOCUS_ROWS)
        focused.append((index, scanned, caught, focus))
    if not focused:
        return found
    first, _ = simulate(
        np.concatenate([f[3] for f in focused]),
        np.concatenate([np.full(FOCUS_ROWS, f[0]) for f in focused]),
    )
    for position, (index, scanned, caught, focus) in enumerate(focused):
        hits = first[position * FOCUS_ROWS : (position + 1) * FOCUS_ROWS] >= 0
        x = np.concatenate([scanned, focus])
        hit = np.concatenate([caught, hits]).astype(float)
        order = np.argsort(x, kind="stable")
        fitted = _logistic_crossing(np.log(x), hit, POWER)
        found[index] = (
            fitted if fitted is not None else _crossing(x[order], _monotone(hit[order]), POWER)
        )
    return found


def _logistic_crossing(log_x: Array, hit: Array, level: float) -> float | None:
    """Where a logistic curve in log x fitted to the hits (maximum likelihood, Newton's
    method) reaches `level`: it pools every simulated stage, so it wavers less than a
    step fit. None when the fit does not settle (all hits alike, or a perfect split)."""
    centre = float(np.mean(log_x))
    design = np.stack([np.ones_like(log_x), log_x - centre], axis=1)
    weights = np.zeros(2)
    for _ in range(25):
        chance = 1.0 / (1.0 + np.exp(-design @ weights))
        gradient = design.T @ (hit - chance)
        curvature = design.T @ (design * (chance * (1 - chance))[:, None]) + 1e-6 * np.eye(2)
        step = np.linalg.solve(curvature, gradient)
        weights = weights + step
        if np.max(np.abs(step)) < 1e-8:
            break
    intercept, slope = weights
    if not (np.all(np.isfinite(weights)) and 0 < slope < 1e3):
        return None
    crossing = centre + (math.log(level / (1 - level)) - intercept) / slope
    if not log_x.min() <= crossing <= log_x.max():
        return None
    return float(math.exp(crossing))


def _monotone(values: Array) -> Array:
    """The non-decreasing fit closest to `values` in least squares (pool adjacent
    violators): the chance of catching a regression only grows with its size."""
    blocks: list[list[float]] = []  # [mean, weight]
    for value in values:
        blocks.append([float(value), 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            mean, weight = blocks.pop()
            blocks[-1] = [
                (blocks[-1][0] * blocks[-1][1] + mean * weight) / (blocks[-1][1] + weight),
                blocks[-1][1] + weight,
            ]
    return np.repeat([b[0] for b in blocks], [int(b[1]) for b in blocks])


def _crossing(x: Array, fitted: Array, level: float) -> float:
    """Where the fitted chance first reaches `level`, interpolated in log x."""
    index = int(np.argmax(fitted >= level))
    if index == 0:
        return float(x[0])
    x0, x1 = math.log(x[index - 1]), math.log(x[index])
    y0, y1 = fitted[index - 1], fitted[index]
    share = (level - y0) / (y1 - y0) if y1 > y0 else 1.0
    return float(math.exp(x0 + share * (x1 - x0)))


def _median_seconds(first: Array, look_seconds: float) -> float | None:
    times = np.where(first >= 0, (first + 1) * look_seconds, np.inf)
    median = float(np.median(times))
    return median if math.isfinite(median) else None


# --- simulated stages, one row per stage ------------------------------------------------


@dataclass(frozen=True)
class _Rows:
    """Each item's traffic per simulated look (looks taken together up to MAX_LOOKS)."""

    candidate: Array
    baseline: Array
    reference: Array
    paired: Array
    looks: Array  # simulated looks
    base: Array
    look_seconds: Array
    groups: int  # 0: the per-request test; else the clustered test over this many groups

    @classmethod
    def of(
        cls, items: list[tuple[GateTraffic, float]], groups: int, max_looks: int = MAX_LOOKS
    ) -> _Rows:
        looks, merged = zip(
            *(_grouped(traffic.looks, max_looks) for traffic, _ in items), strict=True
        )
        group = np.array(merged, dtype=float)
        return cls(
            candidate=np.array([t.candidate for t, _ in items]) * group,
            baseline=np.array([t.baseline for t, _ in items]) * group,
            reference=np.array([t.reference for t, _ in items]),
            paired=np.array([t.paired for t, _ in items]),
            looks=np.array(looks),
            base=np.array([base for _, base in items]),
            look_seconds=np.array([t.interval for t, _ in items]) * group,
            groups=groups,
        )

    def exposures(
        self, owners: Array, look: int, rng: np.random.Generator, groups: int = 0
    ) -> tuple[Array, Array]:
        """One look's (candidate, baseline) exposures per row, or per row and group (the
        requests are independent, so spread evenly); none after an item's end."""
        running = look < self.looks[owners]
        candidate = np.where(running, self.candidate[owners], 0.0)
        baseline = np.where(running, self.baseline[owners], 0.0)
        paired = self.paired[owners]
        if groups:
            candidate = np.repeat(candidate[:, None] / groups, groups, axis=1)
            baseline = np.repeat(baseline[:, None] / groups, groups, axis=1)
            paired = paired[:, None]
        drawn = rng.poisson(candidate)
        return drawn, np.where(paired, drawn, rng.poisson(baseline))


def _grouped(looks: int, max_looks: int) -> tuple[int, int]:
    """(simulated looks, real looks per simulated look)."""
    looks = max(int(looks), 1)
    group = math.ceil(looks / max_looks)
    return max(looks // group, 1), group


def _count_simulation(config: GateConfig, rows: _Rows, rng: np.random.Generator) -> Simulation:
    if rows.groups:
        return _clustered_simulation(config, rows, rng)

    def simulate(ratios: Array, owners: Array) -> tuple[Array, Array]:
        size = ratios.size
        base = rows.base[owners]
        reference = rows.reference[owners].astype(np.int64)
        track = CountTrack(
            rule_for(config),
            size,
            reference_events=rng.binomial(reference, base),
            reference_exposure=reference,
        )
        candidate_rate = np.minimum(ratios * base, 1.0)
        first = np.full(size, -1)
        passed = np.full(size, -1)
        for look in range(int(rows.looks[owners].max())):
            n_candidate, n_baseline = rows.exposures(owners, look, rng)
            track.add(
                rng.binomial(n_candidate, candidate_rate),
                n_candidate,
                rng.binomial(n_baseline, base),
                n_baseline,
            )
            first = np.where((first < 0) & track.fails(), look, first)
            enough = track.candidate_exposure >= config.min_samples
            passed = np.where((passed < 0) & track.passes() & enough, look, passed)
        return first, np.where(first < 0, passed, -1)

    return simulate


def _clustered_simulation(config: GateConfig, rows: _Rows, rng: np.random.Generator) -> Simulation:
    """The count gate as it decides with group counts for both versions (the clustered
    test, `stats/clustered.py`); its PASS also needs min_samples candidate exposures."""

    def simulate(ratios: Array, owners: Array) -> tuple[Array, Array]:
        size = ratios.size
        track = ClusteredTrack(rule_for(config), size, rows.groups)
        base = rows.base[owners][:, None]
        candidate_rate = np.minimum(ratios * rows.base[owners], 1.0)[:, None]
        first = np.full(size, -1)
        passed = np.full(size, -1)
        for look in range(int(rows.looks[owners].max())):
            n_candidate, n_baseline = rows.exposures(owners, look, rng, rows.groups)
            track.add(
                rng.binomial(n_candidate, candidate_rate),
                n_candidate,
                rng.binomial(n_baseline, base),
                n_baseline,
            )
            first = np.where((first < 0) & track.fails(), look, first)
            enough = track.candidate_exposure.sum(axis=1) >= config.min_samples
            passed = np.where((passed < 0) & track.passes() & enough, look, passed)
        return first, np.where(first < 0, passed, -1)

    return simulate


def _shift_simulation(config: GateConfig, rows: _Rows, rng: np.random.Generator) -> Simulation:
    """Two buckets around the edge where half the baseline's requests are faster: the
    candidate has `shift` fewer of its requests there."""

    def simulate(shifts: Array, owners: Array) -> tuple[Array, Array]:
        size = shifts.size
        track = ShiftTrack(config.alpha, float(config.tolerance or 0.0), 2, size)
        first = np.full(size, -1)
        passed = np.full(size, -1)
        for look in range(int(rows.looks[owners].max())):
            n_candidate, n_baseline = rows.exposures(owners, look, rng)
            fast_candidate = rng.binomial(n_candidate, np.clip(0.5 - shifts, 0.0, 1.0))
            fast_baseline = rng.binomial(n_baseline, 0.5)
            track.add(
                np.stack([fast_candidate, n_candidate], axis=1),
                np.stack([fast_baseline, n_baseline], axis=1),
            )
            first = np.where((first < 0) & track.fails(), look, first)
            enough = track.candidate[:, -1] >= config.min_samples
            passed = np.where((passed < 0) & track.passes() & enough, look, passed)
        return first, np.where(first < 0, passed, -1)

    return simulate


def _share_simulation(config: GateConfig, rows: _Rows, rng: np.random.Generator) -> Simulation:
    def simulate(rates: Array, owners: Array) -> tuple[Array, Array]:
        judge = ShareJudge(config, rates.size)
        first = np.full(rates.size, -1)
        passed = np.full(rates.size, -1)
        for look in range(int(rows.looks[owners].max())):
            pairs, _ = rows.exposures(owners, look, rng)
            judge.add(pairs, rng.binomial(pairs, np.clip(rates, 0.0, 1.0)))
            first = np.where((first < 0) & judge.fails(), look, first)
            passed = np.where((passed < 0) & judge.passes(), look, passed)
        return first, np.where(first < 0, passed, -1)

    return simulate


class ShareJudge:
    """The share gate's decisions (`families/share.py`) for many stages at once, on the
    same proportion kernels: FAIL once the e-value against "rate <= max" reaches 1/alpha,
    PASS when the running upper confidence bound is below the max with min_samples pairs."""

    def __init__(self, config: GateConfig, runs: int) -> None:
        self.config = config
        self.limit = float(config.max or 0.0)
        self.pairs = np.zeros(runs)
        self.disagreements = np.zeros(runs)
        self.upper = np.ones(runs)
        self.max_log_e = np.full(runs, -np.inf)

    def add(self, pairs: Array, disagreements: Array) -> None:
        seen = np.asarray(pairs) > 0  # a look without pairs changes nothing
        self.pairs = self.pairs + pairs
        self.disagreements = self.disagreements + disagreements
        alpha = self.config.alpha
        log_e = proportion.log_e_value_at_most(self.limit, self.disagreements, self.pairs)
        upper = proportion.confidence_bounds(self.disagreements, self.pairs, alpha)[1]
        self.upper = np.where(seen, np.minimum(self.upper, upper), self.upper)
        self.max_log_e = np.where(seen, np.maximum(self.max_log_e, log_e), self.max_log_e)

    def fails(self) -> Array:
        return self.max_log_e >= math.log(1.0 / self.config.alpha)

    def passes(self) -> Array:
        return (self.upper < self.limit) & (self.pairs >= self.config.min_samples)


# --- words ------------------------------------------------------------------------------


def describe_regression(found: Detectability, value: float) -> str:
    """A regression in the gate's unit, for people: `1.55x`, `-2.3pt accuracy`, ..."""
    if found.unit == "ratio":
        if metric(found.metric).higher_is_better:
            return f"-{(value - 1.0) * found.base * 100:.2g}pt accuracy"
        return f"{value:.3g}x"
    if found.unit == "shift":
        return f"a {value * 100:.2g}pt shift"
    return f"{value * 100:.3g}% disagreement"


def missed_sentence(found: Detectability, seen: str) -> str:
    """What a gate that stayed undecided could have missed, from the traffic it `seen`."""
    measured = metric(found.metric).words.measured
    if found.smallest is None:
        return (
            f"{measured}: even {describe_regression(found, found.largest)} would have been "
            f"caught less than {POWER * 100:.0f} % of the time with {seen}: too little to judge it"
        )
    return (
        f"{measured}: a regression of {describe_regression(found, found.smallest)} or more "
        f"would have been caught {POWER * 100:.0f} % of the time with {seen}; a smaller one could "
        "have passed unnoticed"
    )


# --- a stage that ended undecided -------------------------------------------------------


def missed_regressions(judge: JudgeState, verdict: StageVerdict) -> list[dict[str, Any]]:
    """For each gate still INCONCLUSIVE, the regression it could have missed, simulated
    with the traffic the stage actually gave it (spread evenly over its looks), at the
    baseline's rate it saw (three events over everything seen when it saw none)."""
    missed = []
    looks = max(judge.looks, 1)
    for gate, said in zip(judge.gates, verdict.verdicts, strict=True):
        if said.outcome is not Outcome.INCONCLUSIVE:
            continue
        traffic, base, seen = _seen(gate, said, looks, judge.exposure == "shadow")
        found = detectability(gate.config, traffic, base)
        missed.append({**found.to_dict(), "seen": seen, "sentence": missed_sentence(found, seen)})
    return missed


def _seen(
    gate: GateFamily, said: Verdict, looks: int, shadow: bool
) -> tuple[GateTraffic, float, str]:
    """(the traffic per look the gate saw, the base rate to simulate at, in words)."""
    counts, config = said.counts, gate.config
    definition = metric(config.metric)
    if definition.family == "share":
        pairs, events = counts.get("pairs", 0), counts.get("disagreements", 0)
        traffic = GateTraffic(pairs / looks, pairs / looks, looks, 1.0, paired=True)
        return traffic, _rate(events, pairs), f"the {pairs:,} mirrored pairs it saw"
    if definition.family == "shift":
        candidate, baseline = counts.get("candidate_samples", 0), counts.get("baseline_samples", 0)
        traffic = GateTraffic(candidate / looks, baseline / looks, looks, 1.0)
        seen = f"the {candidate:,} candidate and {baseline:,} baseline latencies it saw"
        return traffic, 0.0, seen
    exposures = definition.tally.exposures if definition.tally else "requests"
    candidate = counts.get(f"candidate_{exposures}", 0)
    baseline = counts.get(f"baseline_{exposures}", 0)
    if definition.higher_is_better:
        candidate_events = candidate - counts.get("candidate_correct", 0)
        baseline_events = baseline - counts.get("baseline_correct", 0)
    else:
        candidate_events = counts.get("candidate_events", 0)
        baseline_events = counts.get("baseline_events", 0)
    reference = float(getattr(gate, "reference_exposure", 0)) if baseline == 0 else 0.0
    # A gate that decided by the clustered test had group counts: simulate that test.
    grouped = getattr(gate, "grouped", None)
    groups = grouped.groups if getattr(gate, "method", "") == "clustered" and grouped else 0
    base = said.extra.get("baseline_rate") or _rate(
        candidate_events + baseline_events, candidate + baseline
    )
    traffic = GateTraffic(
        candidate / looks,
        baseline / looks,
        looks,
        1.0,
        reference=reference,
        paired=shadow,
        groups=groups,
    )
    shown = 1.0 - base if definition.higher_is_better else base
    seen = (
        f"the {candidate:,} candidate {definition.words.exposures} it saw at the baseline's "
        f"{definition.words.measured} of {shown * 100:.3g}%"
    )
    return traffic, base, seen


def _rate(events: int, exposures: int) -> float:
    """The observed rate, or three events over the exposures when none was seen (the
    usual 95 % upper bound), so that "none seen" is not read as "a rate of zero"."""
    if exposures <= 0:
        return 1.0
    return min((events or 3) / exposures, 1.0)
