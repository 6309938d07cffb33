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
    SLO edge (seconds) of the `slow` series. `groups` and `shadow_groups` map a counter
    (`requests`, ..., `slow`) to a selector whose series split it by hash group of the
    routing key, in `group_label`; empty when the series cannot tell groups apart.
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
    groups: Mapping[str, Selector] = field(default_factory=dict)
    shadow_groups: Mapping[str, Selector] = field(default_factory=dict)
    group_label: str = "group"

    def narrowed(self, *matchers: Matcher) -> Layout:
        """Every selector of this layout narrowed by `matchers` (the plan's `selector:`)."""

        def narrow(selectors: Mapping[str, Selector]) -> dict[str, Selector]:
            return {name: s.with_matchers(*matchers) for name, s in selectors.items()}

        return replace(
            self,
            live=narrow(self.live),
            shadow=narrow(self.shadow),
            groups=narrow(self.groups),
            shadow_groups=narrow(self.shadow_groups),
            shadow_pairs=self.shadow_pairs.with_matchers(*matchers) if self.shadow_pairs else None,
            shadow_disagreements=(
                self.shadow_disagreements.with_matchers(*matchers)
                if self.shadow_disagreements
                else None
            ),
            start_time=self.start_time.with_matchers(*matchers) if self.start_time else None,
        )


def _gray_groups(traffic: str) -> dict[str, Selector]:
    by_traffic = (Matcher("traffic", "=", traffic),)
    names = {counter: f"gray_group_{counter}_total" for counter in SCALARS}
    names[SLOW] = "gray_group_slow_requests_total"
    return {counter: Selector(name, by_traffic) for counter, name in names.items()}


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


def _knative_live() -> dict[str, Selector]:
    # KServe's canary runs in serverless mode, where Knative's queue-proxy beside each
    # predictor pod counts every request its model container answered, by response
    # class, with a latency histogram in milliseconds.
    count = "revision_app_request_count"
    return {
        "requests": Selector(count),
        "errors": Selector(count, (Matcher("response_code_class", "=", "5xx"),)),
        "bad_requests": Selector(count, (Matcher("response_code_class", "=", "4xx"),)),
        HISTOGRAM: Selector("revision_app_request_latencies_bucket"),
    }


# gRPC status names Seldon's agent records in `code` beside REST's HTTP statuses: the
# server's failures, and the client's mistakes.
_GRPC_SERVER_FAILURES = "Internal|Unknown|Unavailable|DataLoss|DeadlineExceeded|Unimplemented"
_GRPC_CLIENT_MISTAKES = "InvalidArgument|FailedPrecondition|OutOfRange|NotFound"


def _seldon_live() -> dict[str, Selector]:
    # Seldon Core 2's agent counts each inference call per model; its latency histogram
    # is per server, not per model, so no latency gate can be fed from it.
    total = "seldon_model_infer_total"
    return {
        "requests": Selector(total),
        "errors": Selector(total, (Matcher("code", "=~", f"5..|{_GRPC_SERVER_FAILURES}"),)),
        "bad_requests": Selector(total, (Matcher("code", "=~", f"4..|{_GRPC_CLIENT_MISTAKES}"),)),
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
        groups=_gray_groups("live"),
        shadow_groups=_gray_groups("shadow"),
    ),
    # Istio's standard metrics, by the serving workload's `version` label. Istio knows
    # nothing of gray's routing key, so it has no per-group counts.
    "istio": Layout(version_label="destination_version", live=_istio_live(), latency_scale=0.001),
    # Knative's queue-proxy series (docs/platforms.md): the version is the predictor pods'
    # `version` label, which the scrape copies onto the series.
    "kserve": Layout(version_label="version", live=_knative_live(), latency_scale=0.001),
    # Seldon Core 2's per-model series: the version is the Seldon Model's name (`model`),
    # as `version_value` spells it (`fraud-v{version}`).
    "seldon": Layout(version_label="model", live=_seldon_live()),
}
LATENCY_UNITS = {"s": 1.0, "ms": 0.001}
