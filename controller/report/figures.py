"""The report's charts, drawn with plotly from the journal's facts.

Plotly rather than matplotlib: a rollout is read by hovering its looks (each
point's exact estimate, interval, e-value and the gate's own sentence) and by
zooming into the minutes around a decision of an hours-long rollout, which
static images cannot give; its output is HTML already, and its import costs
about 0.3 s against matplotlib's 1 s. The price is plotly.js inside each report
(4.8 MB), which `page.py` embeds once for every chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gray.controller.report.facts import GateSeries, Marker, ReportFacts, RouteStep, TrafficPoint

if TYPE_CHECKING:
    import plotly.graph_objects as go

BASELINE, CANDIDATE, MIRRORED = "#1f77b4", "#ff7f0e", "#9467bd"
ALLOWED, DECISION, STAGE, MARK = "#d62728", "#d62728", "#7f7f7f", "#2ca02c"
UNIT_TITLES = {
    "ratio": "candidate ÷ baseline",
    "difference": "candidate − baseline (points)",
    "rate": "share of mirrored pairs",
    "shift": "latency CDF shift",
}
# A confidence sequence's early bounds can be thousands of times the margin; the axis shows
# this many times the largest margin or estimate, and hovering shows the true bound.
RANGE_HEADROOM = 3.0
SIDES = (("baseline", BASELINE, "solid"), ("candidate", CANDIDATE, "solid"))


def when(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


def gate_figure(gate: GateSeries, markers: Sequence[Marker]) -> go.Figure:
    """A gate's estimate and confidence sequence against its margin, and its e-value below."""
    from plotly.subplots import make_subplots

    figure = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.68, 0.32],
        vertical_spacing=0.06,
        subplot_titles=(
            f"{gate.key}: estimate and confidence sequence",
            "e-value (FAIL once it reaches 1/alpha)",
        ),
    )
    e_value_xs, e_value = _estimate_traces(figure, gate)
    figure.add_scatter(
        x=e_value_xs,
        y=e_value,
        mode="lines",
        line={"color": "#17becf"},
        name="e-value",
        row=2,
        col=1,
    )
    thresholds = [1 / p.alpha if p.alpha > 0 else None for p in gate.points]
    figure.add_scatter(
        x=[when(p.at) for p in gate.points],
        y=thresholds,
        mode="lines",
        line={"color": ALLOWED, "dash": "dot", "shape": "hv"},
        name="1/alpha",
        row=2,
        col=1,
    )
    figure.update_yaxes(title_text=UNIT_TITLES.get(gate.unit, gate.unit), row=1, col=1)
    figure.update_yaxes(type="log", row=2, col=1)
    low, high = _range(gate)
    if low is not None and high is not None:
        figure.update_yaxes(range=[low, high], row=1, col=1)
    _mark(figure, markers, rows=2)
    _layout(figure, height=480)
    return figure


def _estimate_traces(figure: go.Figure, gate: GateSeries) -> tuple[list[Any], list[Any]]:
    """The estimate, its confidence band and the allowed margin; the e-value's columns."""
    xs, estimate, lower, upper, allowed, e_value, hover = _gate_columns(gate)
    upper_shown = [_shown(u, gate) for u in upper]
    common: dict[str, Any] = {"x": xs, "mode": "lines", "connectgaps": False}
    figure.add_scatter(
        **common, y=upper_shown, line={"width": 0}, showlegend=False, hoverinfo="skip", row=1, col=1
    )
    figure.add_scatter(
        **common,
        y=lower,
        line={"width": 0},
        fill="tonexty",
        fillcolor="rgba(255,127,14,0.22)",
        name="confidence sequence",
        hoverinfo="skip",
        row=1,
        col=1,
    )
    figure.add_scatter(
        x=xs,
        y=estimate,
        mode="lines+markers",
        marker={"size": 4},
        line={"color": CANDIDATE},
        name="estimate",
        text=hover,
        hovertemplate="%{text}<extra></extra>",
        row=1,
        col=1,
    )
    figure.add_scatter(
        **common,
        y=allowed,
        line={"color": ALLOWED, "dash": "dash", "shape": "hv"},
        name="allowed",
        row=1,
        col=1,
    )
    return xs, e_value


def _gate_columns(gate: GateSeries) -> tuple[list[Any], ...]:
    """The series, with a gap between stages: each stage's gates start afresh."""
    columns: tuple[list[Any], ...] = ([], [], [], [], [], [], [])
    previous_stage: int | None = None
    for point in gate.points:
        if previous_stage is not None and point.stage != previous_stage:
            for column in columns:
                column.append(None)
        previous_stage = point.stage
        for column, value in zip(
            columns,
            (
                when(point.at),
                point.estimate,
                point.lower,
                point.upper,
                point.allowed,
                point.e_value,
                f"stage {point.stage + 1}: {point.sentence}",
            ),
            strict=True,
        ):
            column.append(value)
    return columns


def _shown(upper: float | None, gate: GateSeries) -> float | None:
    """An upper bound not decided yet (infinite) drawn at the top of the axis."""
    if upper is not None:
        return upper
    _, high = _range(gate)
    return high


def _range(gate: GateSeries) -> tuple[float | None, float | None]:
    values = [v for p in gate.points for v in (p.estimate, p.allowed) if v is not None]
    lows = [p.lower for p in gate.points if p.lower is not None]
    if not values:
        return None, None
    top = max(values)
    bottom = min([*values, *lows])
    span = max(top - bottom, abs(top) * 0.1, 1e-6)
    return bottom - 0.1 * span, top + RANGE_HEADROOM * span


def traffic_figure(facts: ReportFacts) -> go.Figure:
    """Requests, errors and bad requests, latency per version, and the split in force."""
    from plotly.subplots import make_subplots

    figure = make_subplots(
        rows=4,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.05,
        subplot_titles=(
            "requests per second",
            "errors and bad requests (% of requests)",
            "latency p50 and p99 (ms, from the histogram)",
            "candidate's share as written and read back (%)",
        ),
    )
    points = facts.traffic
    sides = (*SIDES, ("mirrored", MIRRORED, "dot"))
    for side, colour, dash in sides:
        rows = [(p, p.rows.get(side)) for p in points]
        if not any(row for _, row in rows):
            continue
        xs = [when(p.at) for p, _ in rows]
        line = {"color": colour, "dash": dash}
        rate = [_per_second(p, row) for p, row in rows]
        figure.add_scatter(x=xs, y=rate, name=f"{side} req/s", line=line, row=1, col=1)
        for index, label, symbol in ((1, "errors", "circle"), (2, "bad requests", "x")):
            share = [_share(row, index) for _, row in rows]
            figure.add_scatter(
                x=xs,
                y=share,
                name=f"{side} {label}",
                line=line,
                mode="lines+markers",
                marker={"symbol": symbol, "size": 5},
                row=2,
                col=1,
            )
        for index, label, width in ((3, "p50", 2), (5, "p99", 1)):
            ms = [None if not row or row[index] is None else row[index] * 1000 for _, row in rows]
            figure.add_scatter(
                x=xs,
                y=ms,
                name=f"{side} {label}",
                line={**line, "width": width},
                row=3,
                col=1,
            )
    _route_traces(figure, facts.routes, facts.header.as_of)
    _mark(figure, facts.markers, rows=4)
    _layout(figure, height=820)
    return figure


def _per_second(point: TrafficPoint, row: list[Any] | None) -> float | None:
    if not row or point.seconds <= 0:
        return None
    return row[0] / point.seconds


def _share(row: list[Any] | None, index: int) -> float | None:
    if not row or not row[0]:
        return None
    return 100.0 * row[index] / row[0]


def _route_traces(figure: go.Figure, routes: Sequence[RouteStep], until: float) -> None:
    if not routes:
        return
    xs = [when(r.at) for r in routes] + [when(max(until, routes[-1].at))]
    for name, values, colour in (
        ("weight", [r.weight * 100 for r in routes], CANDIDATE),
        ("mirror", [r.mirror * 100 for r in routes], MIRRORED),
    ):
        if name == "mirror" and not any(values):
            continue
        figure.add_scatter(
            x=xs,
            y=[*values, values[-1]],
            name=name,
            text=[r.why for r in routes] + [""],
            line={"color": colour, "shape": "hv"},
            row=4,
            col=1,
        )


def shadow_figure(facts: ReportFacts) -> go.Figure:
    """Disagreement between the two versions' answers to mirrored requests, look by look."""
    import plotly.graph_objects as go

    points = [p for p in facts.traffic if p.pairs and p.pairs[0] > 0]
    xs = [when(p.at) for p in points]
    per_look = [100.0 * p.pairs[1] / p.pairs[0] for p in points if p.pairs]
    running: list[float] = []
    pairs = disagreements = 0
    stage = None
    for p in points:
        assert p.pairs is not None
        if p.stage != stage:
            stage, pairs, disagreements = p.stage, 0, 0
        pairs, disagreements = pairs + p.pairs[0], disagreements + p.pairs[1]
        running.append(100.0 * disagreements / pairs)
    figure = go.Figure()
    figure.add_bar(x=xs, y=per_look, name="at each look", marker={"color": MIRRORED})
    figure.add_scatter(x=xs, y=running, name="since the stage began", line={"color": CANDIDATE})
    figure.update_yaxes(title_text="% of mirrored pairs that disagree")
    _mark(figure, facts.markers, rows=1)
    _layout(figure, height=360)
    return figure


def _mark(figure: go.Figure, markers: Sequence[Marker], rows: int) -> None:
    """Stage boundaries, the plan's holds and the operator's commands, and the decision."""
    for marker in markers:
        colour = {"stage": STAGE, "decision": DECISION}.get(marker.kind, MARK)
        dash = "solid" if marker.kind in ("stage", "decision") else "dot"
        for row in range(1, rows + 1):
            figure.add_vline(
                x=when(marker.at).timestamp() * 1000,
                line={"color": colour, "dash": dash, "width": 1},
                row=row,
                col=1,
            )
        figure.add_annotation(
            x=when(marker.at),
            y=1.0,
            xref="x",
            yref="paper",
            text=marker.label,
            hovertext=marker.reason[:300],
            showarrow=False,
            textangle=-90,
            xanchor="right",
            yanchor="top",
            font={"size": 10, "color": colour},
        )


def _layout(figure: go.Figure, height: int) -> None:
    figure.update_layout(
        height=height,
        margin={"l": 60, "r": 20, "t": 40, "b": 30},
        hovermode="closest",
        legend={"orientation": "h", "y": -0.08},
        template="plotly_white",
    )
