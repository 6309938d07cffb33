"""Verdicts in words: one sentence a person on call can act on, numbers included."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from gray.controller.gates.metrics import METRICS, Words

if TYPE_CHECKING:
    from gray.controller.gates.verdict import StageVerdict, Verdict

# A verdict of a metric this gray does not know (a newer gray's journal).
_UNKNOWN = Words("", "events", "requests")


def label(metric: str, gate: str) -> str:
    """How a gate is named in a sentence: `slow-request rate (>250ms)`."""
    definition = METRICS.get(metric)
    if definition is None:
        return gate
    if definition.needs_slo and "<" in gate:
        return f"{definition.words.measured} (>{gate.split('<', 1)[1]})"
    return definition.words.measured


def _words(metric: str) -> Words:
    definition = METRICS.get(metric)
    return definition.words if definition else _UNKNOWN


def event_noun(metric: str) -> str:
    return _words(metric).events


def exposure_noun(metric: str) -> str:
    return _words(metric).exposures


def verdict_sentence(verdict: Verdict) -> str:
    name = label(verdict.metric, verdict.gate)
    if verdict.note and verdict.estimate is None and verdict.interval is None:
        return f"{name}: {verdict.note}: {verdict.outcome.label}"
    body = {
        "ratio": _ratio_body,
        "difference": _difference_body,
        "rate": _rate_body,
        "shift": _shift_body,
    }.get(verdict.unit, _ratio_body)(verdict)
    tail = _sample_tail(verdict)
    note = f"; {verdict.note}" if verdict.note else ""
    return f"{name} {body} over {tail}{note}: {verdict.outcome.label}"


def stage_sentence(stage: StageVerdict) -> str:
    if not stage.verdicts:
        return f"no gate applies to this stage: {stage.outcome.label}"
    deciding = [v for v in stage.verdicts if v.outcome is stage.outcome]
    others = [v for v in stage.verdicts if v.outcome is not stage.outcome]
    parts = [v.sentence() for v in deciding + others]
    return f"stage {stage.outcome.label}: " + "; ".join(parts)


# --- bodies -------------------------------------------------------------------------


def _ratio_body(v: Verdict) -> str:
    rates = ""
    candidate_rate, baseline_rate = v.extra.get("candidate_rate"), v.extra.get("baseline_rate")
    if candidate_rate is not None and baseline_rate is not None:
        rates = f"{percent(candidate_rate)} vs {percent(baseline_rate)}; "
    head = f"{times(v.estimate)} baseline" if _finite(v.estimate) else "vs baseline"
    allowed = f"allowed {times(v.allowed)}" if _finite(v.allowed) else "allowed any ratio"
    allowance = v.extra.get("allowance_points")
    if allowance is not None:
        relative = v.extra.get("margin_ratio")
        allowed = f"allowed {points(allowance, signed=True)}"
        if relative is not None:
            allowed = f"allowed {times(relative)} or {points(allowance, signed=True)}"
        low, high = v.extra.get("difference_low"), v.extra.get("difference_high")
        if low is not None and high is not None:
            rates += f"difference {_points_range(low, high)}; "
    return f"{head} ({rates}confidence {_ratio_range(v.interval)}, {allowed})"


def _difference_body(v: Verdict) -> str:
    rates = ""
    candidate, baseline = v.extra.get("candidate_accuracy"), v.extra.get("baseline_accuracy")
    if candidate is not None and baseline is not None:
        rates = f"{percent(candidate)} vs {percent(baseline)}; "
    head = f"{points(v.estimate, signed=True)} vs baseline" if _finite(v.estimate) else ""
    allowed = f"allowed {points(v.allowed, signed=True)}" if _finite(v.allowed) else ""
    interval = _points_range(*v.interval) if v.interval else "none yet"
    return f"{head} ({rates}confidence {interval}, {allowed})".strip()


def _rate_body(v: Verdict) -> str:
    low, high = v.interval if v.interval else (0.0, 1.0)
    return (
        f"{percent(v.estimate)} (confidence {percent(low)} to {percent(high)}, "
        f"allowed {percent(v.allowed)})"
    )


def _shift_body(v: Verdict) -> str:
    low, high = v.interval if v.interval else (0.0, 1.0)
    quantiles = []
    for q in ("p50", "p90", "p99"):
        candidate, baseline = v.extra.get(f"candidate_{q}"), v.extra.get(f"baseline_{q}")
        if candidate is not None and baseline is not None:
            quantiles.append(f"{q} {duration(candidate)} vs {duration(baseline)}")
    shown = (", ".join(quantiles) + "; ") if quantiles else ""
    return (
        f"CDF up to {v.estimate or 0.0:.3f} below baseline's ({shown}confidence "
        f"{low:.3f} to {high:.3f}, allowed {v.allowed or 0.0:.3f})"
    )


def _sample_tail(v: Verdict) -> str:
    counts = v.counts
    metric = v.metric
    if v.unit == "rate":
        text = f"{counts.get('disagreements', 0):,} disagreements in "
        text += f"{counts.get('pairs', 0):,} {exposure_noun(metric)}"
    elif v.unit == "shift":
        text = f"{counts.get('candidate_samples', 0):,} candidate and "
        text += f"{counts.get('baseline_samples', 0):,} baseline {exposure_noun(metric)}"
    elif v.unit == "difference":
        text = f"{counts.get('candidate_labelled', 0):,} labelled candidate predictions"
    else:
        exposure = "labelled" if "candidate_labelled" in counts else "requests"
        text = f"{counts.get('candidate_events', 0):,} candidate {event_noun(metric)} in "
        text += f"{counts.get(f'candidate_{exposure}', 0):,} {exposure_noun(metric)}"
    text += _method_words(v)
    replayed = counts.get("replayed_failures", 0)
    if replayed:
        text += (
            f"; the baseline also failed {counts.get('baseline_also_failed', 0):,} of "
            f"{replayed:,} candidate failures replayed on it"
        )
    exposures = _candidate_exposures(v)
    needed = counts.get("min_samples", 0)
    if v.outcome.value == "inconclusive" and exposures < needed:
        text += f" ({needed:,} needed to pass)"
    return text


def _method_words(v: Verdict) -> str:
    """What a rate gate assumed about its units."""
    if v.method == "per_request":
        return " (assumed independent: no counts per routing-key group)"
    if v.method == "clustered":
        groups = v.counts.get("groups")
        return f" ({groups} routing-key groups)" if groups else " (by routing-key group)"
    return ""


def _candidate_exposures(v: Verdict) -> int:
    counts = v.counts
    for key in ("candidate_requests", "candidate_labelled", "pairs", "candidate_samples"):
        if key in counts:
            return counts[key]
    return 0


# --- numbers ------------------------------------------------------------------------


def times(value: float | None) -> str:
    """A ratio: 2.31x, 1.1x, 0.853x, 12.3x."""
    if value is None or math.isnan(value):
        return "?x"
    if math.isinf(value):
        return "∞x"
    return f"{value:.3g}x"


def percent(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "?%"
    if value == 0:
        return "0%"
    return f"{value * 100:.3g}%"


def points(value: float | None, *, signed: bool = False) -> str:
    """A difference of shares in percentage points: +0.12 points."""
    if value is None or math.isnan(value):
        return "? points"
    if math.isinf(value):
        return ("+" if value > 0 else "-") + "∞ points"
    number = f"{value * 100:+.2f}" if signed else f"{value * 100:.2f}"
    return f"{number} points"


def duration(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "?"
    if math.isinf(seconds):
        return "∞"
    if seconds < 1:
        return f"{seconds * 1000:.3g}ms"
    return f"{seconds:.3g}s"


def _ratio_range(interval: tuple[float, float] | None) -> str:
    if interval is None:
        return "none yet"
    low, high = interval
    if low <= 0 and math.isinf(high):
        return "not bounded yet"
    if low <= 0:
        return f"up to {times(high)}"
    if math.isinf(high):
        return f"at least {times(low)}"
    return f"{times(low)} to {times(high)}"


def _points_range(low: float, high: float) -> str:
    return f"{points(low, signed=True)} to {points(high, signed=True)}"


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
