"""A rollout at a glance: one self-contained HTML page drawn from its journal.

`facts.py` reads what the page shows out of the journal (no drawing), `figures.py`
writes the charts as plotly.js figures, `page.py` lays out the page with plotly.js
inline (from the `report` extra's plotly package), `samples.py` asks the gateway
for disagreeing mirrored pairs, `artifact.py` logs the page to the rollout's MLflow
run when it ends, and `command.py` is `gray rollout report`. Only `page.py` imports
plotly, inside the function that draws.
"""

from __future__ import annotations

from gray.controller.extras import require_extra
from gray.controller.journal import RolloutRecord
from gray.controller.plan.models import Plan
from gray.controller.report.facts import ReportFacts, report_facts
from gray.controller.report.samples import DisagreeingPairs

__all__ = ["DisagreeingPairs", "ReportFacts", "build_report", "report_facts"]


def build_report(
    record: RolloutRecord,
    plan: Plan,
    pairs: DisagreeingPairs | None = None,
    now: float | None = None,
) -> str:
    """The report page of a rollout, ended or still running (then a snapshot at `now`)."""
    require_extra("report", "a rollout report")
    from gray.controller.report import figures
    from gray.controller.report.page import chart_html, render_page

    facts = report_facts(record, plan, now)
    figures_in_order = [
        (f"Gate {gate.key}", figures.gate_figure(gate, facts.markers)) for gate in facts.gates
    ]
    if facts.traffic or facts.routes:
        figures_in_order.append(("Traffic per version", figures.traffic_figure(facts)))
    if any(p.pairs for p in facts.traffic):
        figures_in_order.append(("Shadow: disagreement over time", figures.shadow_figure(facts)))
    charts = [
        (heading, chart_html(figure, number))
        for number, (heading, figure) in enumerate(figures_in_order, start=1)
    ]
    return render_page(facts, charts, pairs)
