"""Where each counter of a Snapshot is read: a `Layout` of series selectors, and the
presets for gray's gateway page and Istio's standard metrics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from gray.controller.metrics.prometheus.promql import Matcher, Selector

SCALARS = ("requests", "errors", "bad_requests", "labelled", "correct")
HISTOGRAM = "latency_buckets"
SLOW = "slow"


@dataclass(frozen=True)
class Layout:
    """Which series hold each counter of a Snapshot, by version.

    `live` and `shadow` map a VersionCounters field (`requests`, ..., `latency_buckets`,
    `slow`) to a selector; `shadow` is the candidate's side of mirrored requests.
    `latency_scale` is seconds per unit of the histogram's `le`; `slow_label` holds the
    SLO edge (seconds) of the `slow` series.
    """

    version_label: str
    live: Mapping[str, Selector]
    version_value: str = "{version}"  # the version label's value for a model version
    shadow: Mapping[str, Selector] = field(default_factory=dict)
    shadow_pairs: Selector | None = None
    shadow_disagreements: Selector | None = None
    latency_scale: float = 1.0
    slow_label: str = "slo_seconds"
    # A gauge each target exports with its process's start time (unix seconds): with it,
    # a restart is seen even when a counter climbed past its old value before a scrape.
    start_time: Selector | None = None

    def narrowed(self, *matchers: Matcher) -> Layout:
        """Every selector of this layout narrowed by `matchers` (the plan's `selector:`)."""

        def narrow(selectors: Mapping[str, Selector]) -> dict[str, Selector]:
            return {name: s.with_matchers(*matchers) for name, s in selectors.items()}

        return replace(
            self,
            live=narrow(self.live),
            shadow=narrow(self.shadow),
            shadow_pairs=self.shadow_pairs.with_matchers(*matchers) if self.shadow_pairs else None,
            shadow_disagreements=(
                self.shadow_disagreements.with_matchers(*matchers)
                if self.shadow_disagreements
                else None
            ),
            start_time=self.start_time.with_matchers(*matchers) if self.start_time else None,
        )


def _gray_side(traffic: str) -> dict[str, Selector]:
    by_traffic = (Matcher("traffic", "=", traffic),)
    names = {
        "requests": "gray_requests_total",
        "errors": "gray_errors_total",
        "bad_requests": "gray_bad_requests_total",
        "labelled": "gray_labelled_total",
        "correct": "gray_correct_total",
        HISTOGRAM: "gray_request_duration_seconds_bucket",
        SLOW: "gray_slow_requests_total",
    }
    return {counter: Selector(name, by_traffic) for counter, name in names.items()}


def _istio_live() -> dict[str, Selector]:
    # Istio reports every request twice, from the client's proxy and from the server's:
    # one reporter only, or every count doubles.
    destination = Matcher("reporter", "=", "destination")
    return {
        "requests": Selector("istio_requests_total", (destination,)),
        "errors": Selector(
            "istio_requests_total", (destination, Matcher("response_code", "=~", "5.."))
        ),
        "bad_requests": Selector(
            "istio_requests_total", (destination, Matcher("response_code", "=~", "4.."))
        ),
        HISTOGRAM: Selector("istio_request_duration_milliseconds_bucket", (destination,)),
    }


PRESETS: dict[str, Layout] = {
    # gray's own gateway /metrics. Its page has no series for the baseline's side of
    # mirrored requests, so a shadow stage compares the candidate's mirrored answers
    # with the baseline's live ones (the same users' requests, all of them).
    "gray": Layout(
        version_label="version",
        live=_gray_side("live"),
        shadow=_gray_side("shadow"),
        shadow_pairs=Selector("gray_shadow_pairs_total"),
        shadow_disagreements=Selector("gray_shadow_disagreements_total"),
        start_time=Selector("gray_start_time_seconds"),
    ),
    # Istio's standard metrics, by the serving workload's `version` label.
    "istio": Layout(version_label="destination_version", live=_istio_live(), latency_scale=0.001),
}
LATENCY_UNITS = {"s": 1.0, "ms": 0.001}
