"""The report's charts, as plotly.js figures (plain data and layout) built from the facts.

Plotly rather than matplotlib: a rollout is read by hovering its looks (each
point's exact estimate, interval, e-value and the gate's own sentence) and by
zooming into the minutes around a decision of an hours-long rollout, which
static images cannot give, and the page stays one file. The figures are written
as plotly.js's own JSON rather than through plotly's Python objects, whose
validation of every property cost seconds for a long rollout; the Python package
provides plotly.js (4.8 MB, embedded once per page by `page.py`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from gray.controller.report.facts import (
    GatePoint,
    GateSeries,
    Marker,
    ReportFacts,
    RouteStep,
    TrafficPoint,
)

Figure = dict[str, Any]  # {"data": [...traces], "layout": {...}}, as Plotly.newPlot takes them

BASELINE, CANDIDATE, MIRRORED = "#1f77b4", "#ff7f0e", "#9467bd"
ALLOWED, DECISION, STAGE, MARK, E_VALUE = "#d62728", "#d62728", "#7f7f7f", "#2ca02c", "#17becf"
UNIT_TITLES = {
    "ratio": "candidate ÷ baseline",
    "difference": "candidate − baseline (points)",
    "rate": "share of mirrored pairs",
    "shift": "latency CDF shift",
}
# A confidence sequence's early bounds can be thousands of times the margin; the axis shows
# a little past the largest margin or estimate (a bound not decided yet is drawn at its top).
RANGE_HEADROOM = 1.5
ROW_SPACING = 0.06


def when(at: float) -> str:
    """A time as plotly.js reads dates: UTC, without a zone suffix."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def rows_figure(titles: Sequence[str], heights: Sequence[float], height: int) -> Figure:
    """An empty figure of rows sharing one time axis, top to bottom, each with its title."""
    usable = 1.0 - ROW_SPACING * (len(titles) - 1)
    total = sum(heights)
    layout: dict[str, Any] = {
        "height": height,
        "margin": {"l": 70, "r": 20, "t": 40, "b": 30},
        "hovermode": "closest",
        "legend": {"orientation": "h", "y": -0.08},
        "plot_bgcolor": "#ffffff",
        "annotations": [],
    }
    top = 1.0
    for row, (title, share) in enumerate(zip(titles, heights, strict=True), start=1):
        bottom = max(top - usable * share / total, 0.0)
        suffix = "" if row == 1 else str(row)
        layout[f"xaxis{suffix}"] = {
            "type": "date",
            "anchor": f"y{suffix}",
            "domain": [0.0, 1.0],
            "gridcolor": "#eeeeee",
            "showticklabels": row == len(titles),
            **({"matches": "x"} if row > 1 else {}),
        }
        layout[f"yaxis{suffix}"] = {
            "anchor": f"x{suffix}",
            "domain": [bottom, top],
            "gridcolor": "#eeeeee",
            "zerolinecolor": "#dddddd",
        }
        layout["annotations"].append(
            {
                "text": title,
                "x": 0.5,
                "y": top,
                "xref": "paper",
                "yref": "paper",
                "xanchor": "center",
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": 14},
            }
        )
        top = bottom - ROW_SPACING
    return {"data": [], "layout": layout}


def axis(figure: Figure, kind: str, row: int) -> dict[str, Any]:
    """Row `row`'s x or y axis ("x"/"y") of the layout, to set its properties."""
    axes: dict[str, Any] = figure["layout"][f"{kind}axis{'' if row == 1 else row}"]
    return axes


def trace(figure: Figure, row: int, **properties: Any) -> None:
    suffix = "" if row == 1 else str(row)
    figure["data"].append(
        {"type": "scatter", "xaxis": f"x{suffix}", "yaxis": f"y{suffix}", **properties}
    )


def gate_figure(gate: GateSeries, markers: Sequence[Marker]) -> Figure:
    """A gate's estimate and confidence sequence against its margin, and its e-value below."""
    figure = rows_figure(
        (
            f"{gate.key}: estimate and confidence sequence",
            "e-value (FAIL once it reaches 1/alpha)",
        ),
        (0.68, 0.32),
        height=480,
    )
    for index, points in enumerate(_by_stage(gate.points)):
        _stage_traces(figure, gate, points, first=index == 0)
    xs: list[Any] = []
    e_values: list[Any] = []
    for index, points in enumerate(_by_stage(gate.points)):
        if index:  # each stage's gates start afresh: no line across stages
            xs.append(None)
            e_values.append(None)
        xs += [when(p.at) for p in points]
        e_values += [p.e_value for p in points]
    trace(figure, 2, x=xs, y=e_values, mode="lines", line={"color": E_VALUE}, name="e-value")
    trace(
        figure,
        2,
        x=[when(p.at) for p in gate.points],
        y=[1 / p.alpha if p.alpha > 0 else None for p in gate.points],
        mode="lines",
        line={"color": ALLOWED, "dash": "dot", "shape": "hv"},
        name="1/alpha",
    )
    axis(figure, "y", 1)["title"] = {"text": UNIT_TITLES.get(gate.unit, gate.unit)}
    axis(figure, "y", 2).update({"type": "log", "dtick": 1})
    low, high = _range(gate)
    if low is not None and high is not None:
        if _logarithmic(gate):
            axis(figure, "y", 1).update(
                {"type": "log", "range": [math.log10(low), math.log10(high)]}
            )
        else:
            axis(figure, "y", 1)["range"] = [low, high]
    _mark(figure, markers)
    return figure


def _stage_traces(
    figure: Figure, gate: GateSeries, points: list[GatePoint], *, first: bool
) -> None:
    """One stage's confidence band, estimate and allowed margin."""
    bottom, top = _range(gate)
    xs = [when(p.at) for p in points]
    band = {"mode": "lines", "line": {"width": 0}, "legendgroup": "band", "hoverinfo": "skip"}
    trace(figure, 1, x=xs, y=[top if p.upper is None else p.upper for p in points], **band)
    figure["data"][-1]["showlegend"] = False
    trace(
        figure,
        1,
        x=xs,
        y=[_shown_lower(p.lower, bottom, gate) for p in points],
        fill="tonexty",
        fillcolor="rgba(255,127,14,0.22)",
        name="confidence sequence",
        showlegend=first,
        **band,
    )
    trace(
        figure,
        1,
        x=xs,
        y=[p.estimate for p in points],
        mode="lines+markers",
        marker={"size": 4},
        line={"color": CANDIDATE},
        name="estimate",
        legendgroup="estimate",
        showlegend=first,
        text=[f"stage {p.stage + 1}: {p.sentence}" for p in points],
        hovertemplate="%{text}<extra></extra>",
    )
    trace(
        figure,
        1,
        x=xs,
        y=[p.allowed for p in points],
        mode="lines",
        line={"color": ALLOWED, "dash": "dash", "shape": "hv"},
        name="allowed",
        legendgroup="allowed",
        showlegend=first,
    )


def _by_stage(points: Sequence[GatePoint]) -> list[list[GatePoint]]:
    runs: list[list[GatePoint]] = []
    for point in points:
        if not runs or runs[-1][-1].stage != point.stage:
            runs.append([])
        runs[-1].append(point)
    return runs


def _shown_lower(lower: float | None, bottom: float | None, gate: GateSeries) -> float | None:
    """A lower bound not decided yet (0 on a log axis, or -inf) drawn at the axis' foot."""
    if lower is None or (_logarithmic(gate) and lower <= 0):
        return bottom
    return lower


def _logarithmic(gate: GateSeries) -> bool:
    """Ratios on a log axis: 0.5x and 2x sit as far from 1x, and a margin of 70,000x (a
    baseline that almost never errs, with an absolute allowance) fits beside 1.1x."""
    return gate.unit == "ratio"


def _range(gate: GateSeries) -> tuple[float | None, float | None]:
    """The axis range: the estimates and margins, the lower bounds, and some headroom."""
    values = [v for p in gate.points for v in (p.estimate, p.allowed) if v is not None]
    lows = [p.lower for p in gate.points if p.lower is not None]
    if _logarithmic(gate):
        values = [v for v in values if v > 0]
        lows = [v for v in lows if v > 0]
    if not values:
        return None, None
    top, bottom = max(values), min([*values, *lows])
    if _logarithmic(gate):
        return bottom / 1.5, top * RANGE_HEADROOM
    span = max(top - bottom, abs(top) * 0.1, 1e-6)
    return bottom - 0.1 * span, top + RANGE_HEADROOM * span


def traffic_figure(facts: ReportFacts) -> Figure:
    """Requests, errors and bad requests, latency per version, and the split in force."""
    figure = rows_figure(
        (
            "requests per second",
            "errors and bad requests (% of requests)",
            "latency p50 and p99 (ms, from the histogram)",
            "candidate's share as written and read back (%)",
        ),
        (1, 1, 1, 1),
        height=820,
    )
    sides = (
        ("baseline", BASELINE, "solid"),
        ("candidate", CANDIDATE, "solid"),
        ("mirrored", MIRRORED, "dot"),
    )
    for side, colour, dash in sides:
        rows = [(p, p.rows.get(side)) for p in facts.traffic]
        if any(row for _, row in rows):
            _side_traces(figure, side, rows, {"color": colour, "dash": dash})
    _route_traces(figure, facts.routes, facts.header.as_of)
    _mark(figure, facts.markers)
    return figure


def _side_traces(
    figure: Figure,
    side: str,
    rows: list[tuple[TrafficPoint, list[Any] | None]],
    line: dict[str, str],
) -> None:
    """One version's requests per second, error and bad-request shares, and latency."""
    xs = [when(p.at) for p, _ in rows]
    rate = [_per_second(p, row) for p, row in rows]
    trace(figure, 1, x=xs, y=rate, name=f"{side} req/s", line=line, mode="lines")
    for index, label, symbol in ((1, "errors", "circle"), (2, "bad requests", "x")):
        trace(
            figure,
            2,
            x=xs,
            y=[_share(row, index) for _, row in rows],
            name=f"{side} {label}",
            line=line,
            mode="lines+markers",
            marker={"symbol": symbol, "size": 5},
        )
    for index, label, width in ((3, "p50", 2), (5, "p99", 1)):
        ms = [None if not row or row[index] is None else row[index] * 1000 for _, row in rows]
        trace(
            figure,
            3,
            x=xs,
            y=ms,
            name=f"{side} {label}",
            line={**line, "width": width},
            mode="lines",
        )


def _per_second(point: TrafficPoint, row: list[Any] | None) -> float | None:
    if not row or point.seconds <= 0:
        return None
    return float(row[0]) / point.seconds


def _share(row: list[Any] | None, index: int) -> float | None:
    if not row or not row[0]:
        return None
    return 100.0 * float(row[index]) / float(row[0])


def _route_traces(figure: Figure, routes: Sequence[RouteStep], until: float) -> None:
    if not routes:
        return
    xs = [when(r.at) for r in routes] + [when(max(until, routes[-1].at))]
    for name, values, colour in (
        ("weight", [r.weight * 100 for r in routes], CANDIDATE),
        ("mirror", [r.mirror * 100 for r in routes], MIRRORED),
    ):
        if name == "mirror" and not any(values):
            continue
        trace(
            figure,
            4,
            x=xs,
            y=[*values, values[-1]],
            name=name,
            text=[r.why for r in routes] + [""],
            mode="lines",
            line={"color": colour, "shape": "hv"},
        )


def shadow_figure(facts: ReportFacts) -> Figure:
    """Disagreement between the two versions' answers to mirrored requests, look by look."""
    figure = rows_figure(("% of mirrored pairs whose answers disagree",), (1,), height=360)
    points = [p for p in facts.traffic if p.pairs and p.pairs[0] > 0]
    running: list[float] = []
    pairs = disagreements = 0
    stage: int | None = None
    for point in points:
        assert point.pairs is not None
        if point.stage != stage:
            stage, pairs, disagreements = point.stage, 0, 0
        pairs, disagreements = pairs + point.pairs[0], disagreements + point.pairs[1]
        running.append(100.0 * disagreements / pairs)
    xs = [when(p.at) for p in points]
    figure["data"].append(
        {
            "type": "bar",
            "x": xs,
            "y": [100.0 * p.pairs[1] / p.pairs[0] for p in points if p.pairs],
            "name": "at each look",
            "marker": {"color": MIRRORED},
        }
    )
    trace(figure, 1, x=xs, y=running, name="since the stage began", line={"color": CANDIDATE})
    _mark(figure, facts.markers)
    return figure


def _mark(figure: Figure, markers: Sequence[Marker]) -> None:
    """Stage boundaries, the plan's holds and the operator's commands, and the decision: a
    line each from the figure's top to its foot, as every row shares the time axis."""
    layout = figure["layout"]
    for marker in markers:
        colour = {"stage": STAGE, "decision": DECISION}.get(marker.kind, MARK)
        dash = "solid" if marker.kind in ("stage", "decision") else "dot"
        at = when(marker.at)
        layout.setdefault("shapes", []).append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": at,
                "x1": at,
                "y0": 0,
                "y1": 1,
                "line": {"color": colour, "dash": dash, "width": 1},
            }
        )
        layout["annotations"].append(
            {
                "x": at,
                "y": 1.0,
                "xref": "x",
                "yref": "paper",
                "text": marker.label,
                "hovertext": marker.reason[:300],
                "showarrow": False,
                "textangle": -90,
                "xanchor": "right",
                "yanchor": "top",
                "font": {"size": 10, "color": colour},
            }
        )
