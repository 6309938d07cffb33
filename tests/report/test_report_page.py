"""The report page in a real browser: headless Chromium opens it from disk, draws every
chart without an error, and what it shows is not blank. A page whose script throws is
caught by the same check."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from gray.controller.report import build_report
from gray.controller.report.samples import pick
from tests.browser import Chromium, chromium

from .conftest import RolloutJournal

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    with chromium() as running:
        yield running


@pytest.fixture(scope="module")
def report_page(rollout_journal: RolloutJournal, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pairs = pick(
        [
            {
                "kind": "shadow",
                "request_id": "req-disagreeing-4c1d",
                "time": 1_700_000_010.0,
                "agree": False,
                "baseline": {"version": "1", "output": [0]},
                "candidate": {"version": "2", "output": [1]},
            },
            {"kind": "shadow", "request_id": "req-agreeing-9e2f", "agree": True},
        ]
    )
    page = tmp_path_factory.mktemp("report") / "report.html"
    page.write_text(build_report(rollout_journal.record, rollout_journal.plan, pairs))
    return page


def pixel_spread(png: bytes) -> float:
    """The standard deviation of the screenshot's grey levels: 0 for a blank page."""
    grey = Image.open(io.BytesIO(png)).convert("L")
    return float(ImageStat.Stat(grey).stddev[0])


def test_the_report_draws_every_chart_in_chromium_without_an_error(
    browser: Chromium, report_page: Path
) -> None:
    html = report_page.read_text()
    assert "<script src=" not in html and "https://" not in html.split("<script>", 1)[0]
    visit = browser.visit(report_page)
    assert visit.errors == []
    # Three gates, the traffic and the shadow chart: every plotly chart drew its SVG.
    assert visit.charts >= 5
    assert pixel_spread(visit.screenshot) > 20
    assert "req-disagreeing-4c1d" in html and "v2: [1]" in html  # not the agreeing pair
    assert "req-agreeing-9e2f" not in html


def test_a_page_whose_script_throws_fails_the_check(browser: Chromium, tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text(
        "<!DOCTYPE html><html><body><p>a chart</p>"
        "<script>Plotly.newPlot(undefined_chart)</script></body></html>"
    )
    visit = browser.visit(broken)
    assert any("Plotly is not defined" in error for error in visit.errors), visit.errors
    assert visit.charts == 0
