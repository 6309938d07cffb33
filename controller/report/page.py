"""The report as one self-contained HTML page: plotly.js inline, no request to anywhere."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape
from typing import Any

from gray.controller.journal import EventKind
from gray.controller.plan.units import format_duration, format_share
from gray.controller.report.facts import ReportFacts
from gray.controller.report.samples import DisagreeingPairs
from gray.controller.state import Phase

OUTCOME_COLOURS = {
    Phase.PROMOTED: "#2ca02c",
    Phase.ROLLED_BACK: "#d62728",
    Phase.ABORTED: "#d62728",
    Phase.REVERTED: "#d62728",
}
CHART_CONFIG = {"displaylogo": False, "responsive": True}
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 6px;
text-align:left;vertical-align:top}th{background:#f4f4f4}.facts th{width:150px}
.outcome{font-weight:600;padding:2px 8px;border-radius:4px;color:#fff}
.decision{font-size:15px;margin:10px 0;padding:8px;background:#f8f8f8;border-left:4px solid #888}
.note{color:#8a5a00}pre{background:#f6f6f6;padding:8px;overflow:auto;font-size:12px}
tr.look{display:none}#show-looks:checked~table tr.look{display:table-row}
td.num{text-align:right}td.when{white-space:nowrap}code{font-size:12px}
"""


def render_page(
    facts: ReportFacts, charts: list[tuple[str, str]], pairs: DisagreeingPairs | None
) -> str:
    """The whole page; `charts` are (heading, a chart's HTML) in order."""
    import plotly.offline

    header = facts.header
    title = f"gray rollout {header.rollout_id}"
    body = [
        _header_html(facts),
        _stages_html(facts),
        *(f"<h2>{escape(heading)}</h2>\n{chart}" for heading, chart in charts),
        _pairs_html(pairs) if facts.has_shadow else "",
        _events_html(facts),
        "<h2>Plan</h2>\n<details><summary>plan.yaml as journaled</summary>"
        f"<pre>{escape(facts.plan_text)}</pre></details>",
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{CSS}</style>"
        f"<script>{plotly.offline.get_plotlyjs()}</script></head>\n<body>\n"
        + "\n".join(part for part in body if part)
        + "\n</body></html>\n"
    )


def chart_html(figure: dict[str, Any], number: int) -> str:
    """One chart: its div, and the script that draws it with the page's plotly.js."""
    # A JavaScript literal, not JSON: NaN would still be read, and "</" cannot end the script.
    payload = json.dumps(figure, separators=(",", ":")).replace("</", "<\\/")
    chart = f"chart-{number}"
    return (
        f"<div id='{chart}' class='chart'></div>\n<script>(function(){{var f={payload};"
        f"Plotly.newPlot('{chart}',f.data,f.layout,{json.dumps(CHART_CONFIG)});}})();</script>"
    )


def stamp(at: float | None) -> str:
    if at is None:
        return "—"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _header_html(facts: ReportFacts) -> str:
    h = facts.header
    colour = OUTCOME_COLOURS.get(h.phase, "#1f77b4")
    end = h.ended_at if h.ended_at is not None else h.as_of
    took = format_duration(max(end - h.started_at, 0.001)) if h.started_at else "—"
    running = "" if h.phase.terminal else f" (a snapshot at {stamp(h.as_of)}; still running)"
    rows = [
        ("model", h.model),
        (
            "versions",
            f"baseline v{h.baseline} ({h.baseline_ref}) → "
            f"candidate v{h.candidate} ({h.candidate_ref})",
        ),
        ("plan", h.plan),
        ("decided by", h.decided_by),
        ("started", stamp(h.started_at)),
        ("ended", stamp(h.ended_at) + running),
        ("took", took),
    ]
    notes = "".join(f"<p class='note'>{escape(n)}</p>" for n in facts.notes)
    return (
        f"<h1>{escape(h.model)}: v{escape(h.baseline)} → v{escape(h.candidate)} "
        f"<span class='outcome' style='background:{colour}'>"
        f"{escape(h.phase.value.replace('_', ' '))}</span></h1>\n"
        f"<div class='decision'>{escape(h.decision)}</div>\n"
        f"<table class='facts'>{_rows(rows)}</table>{notes}"
    )


def _rows(rows: list[tuple[str, str]]) -> str:
    return "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)


def _stages_html(facts: ReportFacts) -> str:
    if not facts.stages:
        return "<h2>Stages</h2><p>no stage started</p>"
    lines = [
        "<h2>Stages</h2><table><tr><th>stage</th><th>name</th><th>weight</th><th>mirror</th>"
        "<th>started</th><th>took</th><th>extensions</th><th>outcome</th></tr>"
    ]
    for s in facts.stages:
        end = s.ended_at if s.ended_at is not None else facts.header.as_of
        lines.append(
            f"<tr><td class='num'>{s.number}</td><td>{escape(s.name)}</td>"
            f"<td class='num'>{format_share(s.weight)}</td>"
            f"<td class='num'>{format_share(s.mirror)}</td>"
            f"<td class='when'>{stamp(s.started_at)}</td>"
            f"<td>{format_duration(max(end - s.started_at, 0.001))}</td>"
            f"<td class='num'>{s.extensions}</td><td>{escape(s.outcome)}</td></tr>"
        )
    lines.append("</table>")
    return "\n".join(lines)


def _pairs_html(pairs: DisagreeingPairs | None) -> str:
    heading = "<h2>Disagreeing pairs (from the prediction log)</h2>"
    if pairs is None:
        return heading + "<p class='note'>the prediction log was not asked</p>"
    note = f"<p class='note'>{escape(pairs.note)}</p>" if pairs.note else ""
    if not pairs.pairs:
        return heading + note
    lines = [
        heading + note,
        "<table><tr><th>time</th><th>request</th><th>baseline answer</th>"
        "<th>candidate answer</th></tr>",
    ]
    for pair in pairs.pairs:
        lines.append(
            f"<tr><td class='when'>{stamp(_number(pair.get('time')))}</td>"
            f"<td><code>{escape(str(pair.get('request_id', '')))}</code></td>"
            f"<td><code>{escape(_answer(pair.get('baseline')))}</code></td>"
            f"<td><code>{escape(_answer(pair.get('candidate')))}</code></td></tr>"
        )
    lines.append("</table>")
    return "\n".join(lines)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _answer(side: object) -> str:
    """One side of a mirrored pair: its version and output, cut to a readable length."""
    if not isinstance(side, dict):
        return "—"
    output = side.get("output", side.get("status"))
    text = json.dumps(output, default=str)
    text = text if len(text) <= 200 else text[:199] + "…"
    return f"v{side.get('version', '?')}: {text}"


def _events_html(facts: ReportFacts) -> str:
    looks = sum(1 for e in facts.events if e.event is EventKind.LOOK)
    lines = [
        "<h2>Journal</h2>",
        f"<input type='checkbox' id='show-looks'><label for='show-looks'> show the {looks} "
        "looks too (their numbers are in the charts)</label>",
        "<table><tr><th>#</th><th>time</th><th>event</th><th>stage</th><th>phase</th>"
        "<th>reason</th></tr>",
    ]
    for event in facts.events:
        css = " class='look'" if event.event is EventKind.LOOK else ""
        # A stage's own events name it; the state after them may already be on the next.
        stage = event.data.get("stage", event.state.get("stage"))
        shown_stage = str(int(stage) + 1) if isinstance(stage, int) else ""
        lines.append(
            f"<tr{css}><td class='num'>{event.seq}</td><td class='when'>{stamp(event.at)}</td>"
            f"<td>{escape(event.event.value)}</td><td class='num'>{shown_stage}</td>"
            f"<td>{escape(str(event.state.get('phase', '')))}</td>"
            f"<td>{escape(event.reason)}</td></tr>"
        )
    lines.append("</table>")
    return "\n".join(lines)
