"""The MetricsSource for Prometheus: per-version counters read from the series it scraped.

    metrics: {type: prometheus, url: http://prometheus:9090, preset: gray,
              selector: {job: gray-gateway}}

The hard part is that Prometheus keeps one series per scraped target, and targets
restart (their counters fall back to zero), disappear (their series go stale), and
miss scrapes. The obvious queries are wrong there:

- `sum(counter)` drops when a target restarts or disappears, and jumps back when it
  returns: a look sees fewer requests than the last, the next one sees them twice.
- `sum(increase(counter[since_start]))` follows resets, but it extrapolates to the
  window's edges (fractional, and a few requests too many or too few), it never counts
  a series' first sample (a version's first requests on a replica that started after
  the window opened: prometheus-client creates a labelled series at its first
  increment), and two looks over growing windows can disagree by more than the
  traffic between them.

So this source never aggregates on the Prometheus side. It reads each selected series
raw, one per target and label set, and keeps a small ledger per series:

1. The first look (at time T0) reads every series' level,
   `last_over_time(selector[lookback])`, which also finds a target that is down at T0.
   The level is what the series counts from (like the gateway's "since it started").
2. Every later look reads the raw samples since the previous look, `selector[window]`
   (the window reaches `MARGIN_SECONDS` further back, for samples Prometheus wrote
   late), and walks each series' samples newer than the last one it counted: a rise
   adds the difference; a fall is a counter reset (the target restarted), and adds the
   new value, since the counter started again from zero. These are the rules of
   PromQL's own `increase`, without extrapolation. Where targets export their start
   time (the `gray` preset: `gray_start_time_seconds`), a sample whose scrape carries a
   new start time is a reset too: a restarted target whose counter climbed past its
   old value before its first scrape would otherwise look like a small rise.
3. A series first seen after T0 is new (a replica that started, a version's first
   request): it adds its first value, then walks as above.
4. A series that stops (its target went away) keeps what it counted; if it comes back
   the walk goes on from its last value, across the gap.

The totals are sums over series of what each counted, so they never go down, a reset
is never counted twice, and a scrape gap only delays counts (the samples either side
of the gap carry the difference). What no scraper can see is lost, as with any
Prometheus counter: requests a target answered after its last scrape before it died.
One limit: a target that was unscraped for longer than `lookback` before T0 and
returns without a restart has its whole count added at once when it returns.

"No data" and "source broken" stay apart, as for the gateway source: a Prometheus that
cannot be reached or refuses a query raises MetricsError; a version with no series
reads as zero counters, which the gates call no data. A version whose requests are
there but whose errors come from a metric of their own that has no series for it also
reads as zero counters (no data), never as a version without errors.
"""

from gray.controller.metrics.prometheus.layout import PRESETS, Layout
from gray.controller.metrics.prometheus.ledger import SeriesLedger
from gray.controller.metrics.prometheus.source import PrometheusMetrics
from gray.controller.metrics.prometheus.spec import PrometheusMetricsSpec, PrometheusQueries

__all__ = [
    "PRESETS",
    "Layout",
    "PrometheusMetrics",
    "PrometheusMetricsSpec",
    "PrometheusQueries",
    "SeriesLedger",
]
