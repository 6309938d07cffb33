"""The plan's `metrics: {type: prometheus, ...}` block, which builds a `PrometheusMetrics`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from gray.controller.errors import ConfigError
from gray.controller.gates.metrics import METRIC_NAMES, metric
from gray.controller.metrics.prometheus.layout import (
    HISTOGRAM,
    LATENCY_UNITS,
    PRESETS,
    SLOW,
    Layout,
)
from gray.controller.metrics.prometheus.promql import (
    PrometheusClient,
    Selector,
    matcher_from_value,
    parse_selector,
)
from gray.controller.metrics.prometheus.source import DEFAULT_LOOKBACK_SECONDS, PrometheusMetrics
from gray.controller.plan.models import Duration, FieldProblem, MetricsSpec, Timeout

if TYPE_CHECKING:
    from gray.controller.plan.models import Plan


def _selector_text(text: str) -> str:
    parse_selector(text)
    return text


SelectorText = Annotated[str, AfterValidator(_selector_text)]


class PrometheusQueries(BaseModel):
    """Explicit series selectors, one per counter; each replaces the preset's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests: SelectorText | None = None
    errors: SelectorText | None = None
    bad_requests: SelectorText | None = None
    labelled: SelectorText | None = None
    correct: SelectorText | None = None
    latency_buckets: SelectorText | None = None

    def given(self) -> dict[str, Selector]:
        return {
            name: parse_selector(text)
            for name, text in self.model_dump().items()
            if text is not None
        }


class PrometheusMetricsSpec(MetricsSpec):
    """Counters from a Prometheus server: a `preset` (`gray`: the gateway's /metrics,
    `istio`: Istio's standard metrics, `kserve`: Knative's queue-proxy series beside
    KServe's predictors, `seldon`: Seldon Core 2's per-model series), explicit
    `queries`, or both (a query replaces
    the preset's). `selector` narrows every query to the model (`{job: fraud-gateway}`,
    `{destination_service_name: fraud}`); `version_label` and `version_value` say how
    a series names a model version (`destination_version: "v{version}"`)."""

    type: Literal["prometheus"] = "prometheus"
    url: str
    preset: Literal["gray", "istio", "kserve", "seldon"] | None = None
    selector: dict[str, str] = Field(default_factory=dict)
    queries: PrometheusQueries = Field(default_factory=PrometheusQueries)
    version_label: str | None = None
    version_value: str = "{version}"
    latency_unit: Literal["s", "ms"] | None = None
    timeout: Timeout = 10.0
    lookback: Duration = DEFAULT_LOOKBACK_SECONDS
    token: str | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or len(value) <= len("https://"):
            raise ValueError(f"expected an http:// or https:// address, got {value!r}")
        return value.rstrip("/")

    @field_validator("selector")
    @classmethod
    def _matchers(cls, value: dict[str, str]) -> dict[str, str]:
        for label, text in value.items():
            matcher_from_value(label, text)
        return value

    @field_validator("version_value")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            rendered = value.format(version="1")
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"use {{version}} and no other field: {error}") from None
        if rendered == value:
            raise ValueError('must contain {version}, as in "v{version}"')
        return value

    @model_validator(mode="after")
    def _counts_something(self) -> PrometheusMetricsSpec:
        given = self.queries.given()
        if self.preset is None and given and not {"requests", "errors"} <= set(given):
            raise ValueError(
                "queries without a preset must give both requests and errors "
                "(or name a preset: gray, istio, kserve or seldon)"
            )
        return self

    def layout(self) -> Layout:
        """The preset (gray when neither a preset nor queries are given) with the explicit
        queries, version label, latency unit and selector applied."""
        given = self.queries.given()
        preset_name = self.preset or (None if given else "gray")
        base = PRESETS[preset_name] if preset_name else Layout("version", {})
        layout = replace(
            base,
            live={**base.live, **given},
            # A query of its own replaces a preset's total; the preset's per-group series
            # would then split another count, so groups are read only from a preset alone.
            groups={} if given else base.groups,
            shadow_groups={} if given else base.shadow_groups,
            version_label=self.version_label or base.version_label,
            version_value=self.version_value,
            latency_scale=(
                LATENCY_UNITS[self.latency_unit] if self.latency_unit else base.latency_scale
            ),
        )
        matchers = (matcher_from_value(label, text) for label, text in self.selector.items())
        return layout.narrowed(*matchers)

    def plan_problems(self, plan: Plan) -> Iterator[FieldProblem]:
        return _unmirrored(self.layout(), plan)

    def counts_groups(self) -> bool:
        return bool(self.layout().groups)

    def unfed_gates(self, plan: Plan) -> dict[str, str]:
        """Each gate reading a counter this layout has no series for would wait for data
        that never comes."""
        layout = self.layout()
        unfed = {}
        for name in METRIC_NAMES:
            unread = _unread(layout, metric(name).reads)
            if unread:
                unfed[name] = (
                    f"it reads {', '.join(unread)}, which this Prometheus source has no "
                    f"series for ({_how_to_count(self.preset)})"
                )
        return unfed

    def build(self, plan: Plan) -> PrometheusMetrics:
        layout = self.layout()
        # A plan read by parse_plan was refused already; this guards other callers.
        for _, message in _unmirrored(layout, plan):
            raise ConfigError(message)
        return PrometheusMetrics(
            PrometheusClient(self.url, token=self.token, timeout=self.timeout),
            layout,
            slo_edges=plan.slo_edges(),
            lookback=self.lookback,
        )

    def secrets(self) -> tuple[str | None, ...]:
        return (self.token,)


def _unmirrored(layout: Layout, plan: Plan) -> Iterator[FieldProblem]:
    """A shadow stage would wait for mirrored pairs this layout never counts: the plan is
    refused before any traffic moves."""
    for index, stage in enumerate(plan.stages):
        if stage.is_shadow and not layout.shadow:
            yield (
                ("stages", index, "mirror"),
                f"this Prometheus source counts no mirrored requests (only the gray preset "
                f"does), but stage {stage.name} mirrors traffic to the candidate",
            )


def _how_to_count(preset: str | None) -> str:
    """What a plan can do about a counter its source lacks."""
    if preset in (None, "gray"):
        return "give them under queries"
    return f"the {preset} preset's series do not count them; give them under queries"


def _unread(layout: Layout, reads: tuple[str, ...]) -> list[str]:
    """The counters in `reads` this layout cannot give (the gateway's extras aside)."""
    wanted = set(reads) - {"requests", "replayed_failures", "baseline_also_failed"}
    have = set(layout.live)
    if "slow" in wanted:  # counted at the edge, or read off the histogram
        wanted -= {"slow", HISTOGRAM}
        if not have & {SLOW, HISTOGRAM}:
            wanted.add(HISTOGRAM)
    if layout.shadow_pairs is not None:
        have.add("shadow.pairs")
    if layout.shadow_disagreements is not None:
        have.add("shadow.disagreements")
    return sorted(wanted - have)
