"""The rollout plan: its typed models (read and checked by `plan.loading`).

A plan says which model versions to compare, where traffic is split, how each
stage moves traffic, which gates judge it, and what happens at the end. The YAML
forms (`30s`, `5%`, `${VAR:-default}`) are parsed here into seconds and shares.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    SerializeAsAny,
    ValidationError,
)
from pydantic_core import InitErrorDetails

from gray.controller.gates.config import MAX_COUNT, SLO_RANGE, GateFields
from gray.controller.plan.units import duration_between, format_share, parse_share
from gray.controller.plugins import METRICS_TYPES, ROUTER_TYPES, AdapterTypes
from gray.controller.types import Audience

if TYPE_CHECKING:
    from gray.controller.metrics.base import MetricsSource
    from gray.controller.routers.base import Router

# The durations a plan may give, in seconds (README: "Durations"). Outside them a
# plan is a typo or hostile: a look every millisecond hammers the endpoint, a
# dwell of a zillion days never ends and overflows every clock sum.
DURATION_RANGES: dict[str, tuple[float, float]] = {
    "any": (0.001, 365 * 86400.0),
    "interval": (1.0, 3600.0),
    "dwell": (1.0, 30 * 86400.0),  # also an inconclusive stage's `extend` and no-data `hold`
    "slo": SLO_RANGE,
    "timeout": (0.1, 300.0),
}

Duration = Annotated[float, BeforeValidator(duration_between(*DURATION_RANGES["any"]))]
Interval = Annotated[float, BeforeValidator(duration_between(*DURATION_RANGES["interval"]))]
Dwell = Annotated[float, BeforeValidator(duration_between(*DURATION_RANGES["dwell"]))]
Timeout = Annotated[float, BeforeValidator(duration_between(*DURATION_RANGES["timeout"]))]
Share = Annotated[float, BeforeValidator(parse_share)]
# A problem found in a parsed plan: the path of the field it is about, and what is wrong.
FieldProblem = tuple[tuple[str | int, ...], str]
NotifyEvent = Literal["start", "stage", "approval", "pause", "rollback", "promote", "abort"]
NOTIFY_EVENTS: tuple[str, ...] = (
    "start",
    "stage",
    "approval",
    "pause",
    "rollback",
    "promote",
    "abort",
)

_ALIAS = re.compile(r"^@[A-Za-z0-9_][A-Za-z0-9_\-]*$")


def _version_ref(value: object) -> str:
    """`"@alias"` or a version number; YAML may hand the number over as an int."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f'expected "@alias" or a version number, got {value!r}')
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"a version number starts at 1, got {value}")
        return str(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit() and int(text) >= 1:
            return str(int(text))
        if _ALIAS.match(text):
            return text
        if text and not text.startswith("@") and _ALIAS.match("@" + text):
            raise ValueError(f'an alias starts with @: write "@{text}"')
    raise ValueError(f'expected "@alias" or a version number, got {value!r}')


VersionRef = Annotated[str, BeforeValidator(_version_ref)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PreprocessorBinding(_Strict):
    """Where each version's preprocessor lives: inside the version, or as its own model."""

    artifact: str | None = None
    registered_model: str | None = None


class ModelSpec(_Strict):
    name: str = Field(min_length=1)
    baseline: VersionRef
    candidate: VersionRef
    preprocessor: PreprocessorBinding | None = None


class RegistrySpec(_Strict):
    uri: str | None = None


class RouterSpec(_Strict):
    """The plan's `router:` block: the serving endpoint that splits traffic. Its `type`
    picks one subclass (`plugins.ROUTER_TYPES`: `gateway`, or a type another package
    declares), which holds that endpoint's fields and builds its adapter."""

    type: str
    # What the preflight can ask the endpoint: which version it serves before gray's first
    # write, and the sha256 of the preprocessor it applies to each version. An endpoint
    # that cannot tell (HAProxy in front of opaque servers) says so, and the preflight
    # reports the check as one it could not make instead of failing it.
    shows_served_version: ClassVar[bool] = True
    shows_preprocessor: ClassVar[bool] = True
    # Candidate traffic returns to the baseline this long after the controller's last look,
    # unless a stage holds it; every router writes leases. Default: a few intervals
    # (see endpoint_actions.lease_ttl).
    lease_ttl: Duration | None = None

    def build(self) -> Router:
        raise NotImplementedError(f"router type {self.type!r} builds no adapter")

    def build_for(self, plan: Plan) -> Router:
        """The adapter for this block within `plan`: a type whose adapter needs the plan's
        model or registry (KServe: the storage URI of each version) overrides this."""
        return self.build()

    def describe(self) -> str:
        """Where the endpoint is, for messages (they are redacted where they are shown)."""
        return f"the {self.type} endpoint"

    def secrets(self) -> tuple[str | None, ...]:
        """Values masked in every message once the plan is read (tokens)."""
        return ()

    def plan_problems(self, plan: Plan) -> Iterator[FieldProblem]:
        """What the plan asks of this endpoint that it cannot do (a mirror, an audience),
        as (field path, message): refused by `gray plan validate`, not at run time."""
        return iter(())

    @classmethod
    def model_for(cls, value: object) -> type[_Strict]:
        """The model a block with this value is read as (for plan problems' hints)."""
        return _block_model(value, ROUTER_TYPES, RouterSpec) or cls


class MetricsSpec(_Strict):
    """The plan's `metrics:` block: where the counters come from. Its `type` picks one
    subclass (`plugins.METRICS_TYPES`), which builds the adapter."""

    type: str

    def build(self, plan: Plan) -> MetricsSource:
        """The adapter; `plan` for what the source counts (the gates' latency edges) or
        what it may share with the router (an address)."""
        raise NotImplementedError(f"metrics type {self.type!r} builds no adapter")

    def secrets(self) -> tuple[str | None, ...]:
        """Values masked in every message once the plan is read (tokens)."""
        return ()

    def plan_problems(self, plan: Plan) -> Iterator[FieldProblem]:
        """What the plan's stages or the block's own fields need that this source cannot
        give, as (field path, message): refused by `gray plan validate`, not at run time.
        Gates it cannot feed are said by `unfed_gates` instead."""
        return iter(())

    def unfed_gates(self, plan: Plan) -> dict[str, str]:
        """The gate metrics (`error_rate`, `accuracy`, ...) this source cannot feed, each
        with the reason. `gray plan validate` refuses every gate of the plan that uses one,
        at the gate's own field; a source that feeds every gate returns nothing."""
        return {}

    def counts_groups(self) -> bool:
        """Whether the source counts per hash group of the routing key, so that the rate
        gates decide by the clustered test; `gray plan show --rps` simulates that test then."""
        return False

    @classmethod
    def model_for(cls, value: object) -> type[_Strict]:
        """The model a block with this value is read as (for plan problems' hints)."""
        return _block_model(value, METRICS_TYPES, MetricsSpec) or cls


def gates_other_than(fed: tuple[str, ...], reason: str) -> dict[str, str]:
    """`unfed_gates` of a source that feeds the gates `fed` whatever the plan: every other
    gate, with `reason` and the gates it does feed."""
    from gray.controller.gates.metrics import METRIC_NAMES

    return {
        name: f"{reason}; it feeds {', '.join(fed)}" for name in METRIC_NAMES if name not in fed
    }


# A block that names no type is gray's own gateway, as before blocks had types.
DEFAULT_TYPE = "gateway"


def _block_model(value: object, types: AdapterTypes, base: type[_Strict]) -> type[_Strict] | None:
    """The subclass of `base` a block of this value names by its `type` (None: none known)."""
    name = value.get("type", DEFAULT_TYPE) if isinstance(value, dict) else DEFAULT_TYPE
    if not isinstance(name, str):
        return None
    model = types.load(name)
    if model is not None and not (isinstance(model, type) and issubclass(model, base)):
        # A package declared something else under this name: say so, not "unknown type".
        raise ValueError(f"{types.block} type {name!r} is not a {base.__name__}: {model!r}")
    return model


def _block_validator(types: AdapterTypes, base: type[_Strict]) -> PlainValidator:
    """Reads a `router:` or `metrics:` block as the subclass its `type` names; every
    problem keeps its place inside the block, worded like the plan's other problems."""

    def validate(value: object) -> _Strict:
        if isinstance(value, base):
            return value
        if not isinstance(value, dict):
            raise _invalid(
                base,
                [
                    InitErrorDetails(
                        type="model_type", loc=(), input=value, ctx={"class_name": base.__name__}
                    )
                ],
            )
        model = _block_model(value, types, base)
        if model is None:
            expected = " or ".join(f"'{name}'" for name in types.names())
            raise _invalid(
                base,
                [
                    InitErrorDetails(
                        type="literal_error",
                        loc=("type",),
                        input=value.get("type"),
                        ctx={"expected": expected},
                    )
                ],
            )
        try:
            return model.model_validate({"type": DEFAULT_TYPE, **value})
        except ValidationError as exc:
            raise _invalid(
                base,
                [
                    InitErrorDetails(
                        type=item["type"],
                        loc=tuple(item["loc"]),
                        input=item.get("input"),
                        ctx=item.get("ctx", {}),
                    )
                    for item in exc.errors(include_url=False)
                ],
            ) from None

    return PlainValidator(validate)


def _invalid(base: type[_Strict], errors: list[InitErrorDetails]) -> ValidationError:
    return ValidationError.from_exception_data(base.__name__, errors)


def _default_block(types: AdapterTypes) -> Any:
    return types.load(DEFAULT_TYPE)()


class GateSpec(GateFields):
    """One gate: a metric, the margin the candidate may use, and its error budget (the
    fields are the gates' own, `gates.config.GateFields`; the metrics `gates.metrics`)."""

    def describe(self) -> str:
        """The gate in a few words, for tables: `error_rate ≤ +10%`."""
        limits: list[str] = []
        if self.max_increase is not None:
            limits.append(f"+{format_share(self.max_increase)}")
        if self.max_increase_abs is not None:
            limits.append(f"+{self.max_increase_abs * 100:g}pt")
        if self.max_decrease is not None:
            limits.append(f"-{self.max_decrease * 100:g}pt")
        if self.max is not None:
            limits.append(f"≤{format_share(self.max)}")
        if self.tolerance is not None:
            limits.append(f"±{format_share(self.tolerance)}")
        return f"{self.key} {' '.join(limits)}".strip()


class StageGate(GateFields):
    """A stage's change to one of the plan's gates (matched by metric and slo), or a new gate:
    the gate's fields, with what it leaves out taken from the plan's gate."""

    min_samples: int | None = Field(default=None, ge=1, le=MAX_COUNT)  # type: ignore[assignment]
    enabled: bool | None = None  # type: ignore[assignment]


class AudienceSpec(_Strict):
    """Which requests may reach the candidate: client CIDRs and header rules, all must match."""

    cidr: tuple[str, ...] = ()
    headers: dict[str, str | list[str]] = Field(default_factory=dict)

    def to_audience(self) -> Audience:
        return Audience.from_dict({"cidr": list(self.cidr), "headers": dict(self.headers)})


class StageSpec(_Strict):
    name: str = Field(min_length=1)
    weight: Share = 0.0
    mirror: Share = 0.0
    audience: AudienceSpec = Field(default_factory=AudienceSpec)
    dwell: Dwell  # the longest the stage runs before the end-of-dwell decision
    # The shortest it runs: once every gate PASSes, this is over and min_requests is
    # reached, the stage ends early. None: the plan's min_dwell; neither: never early.
    min_dwell: Dwell | None = None
    min_requests: int = Field(default=0, ge=0, le=MAX_COUNT)
    approval: bool = False
    allow_decrease: bool = False
    hold: bool = False  # keep this stage's traffic with no lease expiry, controller or not
    gates: tuple[StageGate, ...] = ()

    @property
    def is_shadow(self) -> bool:
        return self.weight == 0 and self.mirror > 0

    @property
    def exposure(self) -> str:
        """What the gates compare: `shadow` (mirrored pairs) or `live` (answered traffic)."""
        return "shadow" if self.is_shadow else "live"


class InconclusivePolicy(_Strict):
    """A stage whose gates have not decided at the end of its dwell.

    The gates hunt for regressions: a FAIL ends the rollout at any look. Proving
    that a candidate is no worse within a tight margin takes far more traffic
    than most stages see (about 300,000 requests for +10 % at a 1 % error rate),
    so by default a stage that found no regression in its dwell and one
    extension passes, as in Flagger and Argo Rollouts. `then: fail` demands
    proof instead.
    """

    extend: Dwell | None = None
    max_extensions: int = Field(default=1, ge=0, le=100)
    then: Literal["fail", "pass"] = "pass"


class NoDataPolicy(_Strict):
    """A stage whose metrics source returns no data for the candidate."""

    hold: Dwell = 300.0


class Policies(_Strict):
    inconclusive: InconclusivePolicy = Field(default_factory=InconclusivePolicy)
    no_data: NoDataPolicy = Field(default_factory=NoDataPolicy)


class PromoteSpec(_Strict):
    alias: str = "champion"
    keep_previous_as: str | None = "previous-champion"


NotifyKind = Literal["slack", "teams", "discord", "pagerduty", "webhook"]
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
# What a PagerDuty incident follows: a rollback or an abort opens it, a promotion closes it.
PAGERDUTY_EVENTS: tuple[str, ...] = ("rollback", "abort", "promote")


class NotifySpec(_Strict):
    """Where a rollout's events are told (`controller/notify/`): a Slack-compatible
    webhook (the default kind), Microsoft Teams, Discord, PagerDuty's Events API v2
    (`routing_key`; a rollback triggers an incident, a promotion resolves it) or any
    JSON webhook (`webhook`: gray's own payload, with `headers`)."""

    kind: NotifyKind = "slack"
    url: str | None = None  # PagerDuty: its Events API unless given
    events: tuple[NotifyEvent, ...] | None = None  # None: every event the kind takes
    routing_key: str | None = None  # PagerDuty's integration key (keep it in ${VAR})
    headers: dict[str, str] = Field(default_factory=dict)  # webhook: e.g. Authorization

    @property
    def address(self) -> str:
        """Where the messages go."""
        return self.url or (PAGERDUTY_EVENTS_URL if self.kind == "pagerduty" else "")

    @property
    def wanted(self) -> tuple[str, ...]:
        """The events this target is told."""
        if self.events is not None:
            return self.events
        return PAGERDUTY_EVENTS if self.kind == "pagerduty" else NOTIFY_EVENTS


HOOK_KINDS: tuple[str, ...] = (
    "pre_rollout",
    "pre_stage",
    "post_stage",
    "confirm_promotion",
    "on_rollback",
)


class HookSpec(_Strict):
    """A webhook gray asks at one point of a rollout (`controller/hooks.py`): a 2xx answer
    within `timeout` passes; anything else, a timeout included, fails with its reason."""

    url: str
    timeout: Timeout = 10.0
    headers: dict[str, str] = Field(default_factory=dict)  # e.g. Authorization: Bearer ${T}


class HooksSpec(_Strict):
    """Where a rollout asks its webhooks, and what a failure does:

    - `pre_rollout`: before any traffic moves (a smoke test); failure stops, exit 2.
    - `pre_stage`: before each stage's route is written; failure rolls back.
    - `post_stage`: after each stage passed its gates; failure rolls back.
    - `confirm_promotion`: before promoting; anything but 2xx holds like an approval
      (asked again at every look; `gray rollout approve` promotes without it).
    - `on_rollback`: after a rollback or an abort; its failure is journaled only.
    """

    pre_rollout: HookSpec | None = None
    pre_stage: HookSpec | None = None
    post_stage: HookSpec | None = None
    confirm_promotion: HookSpec | None = None
    on_rollback: HookSpec | None = None

    def get(self, kind: str) -> HookSpec | None:
        if kind not in HOOK_KINDS:
            raise ValueError(f"no hook {kind!r}; hooks are {', '.join(HOOK_KINDS)}")
        hook: HookSpec | None = getattr(self, kind)
        return hook


class Plan(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    description: str | None = None
    model: ModelSpec
    registry: RegistrySpec = Field(default_factory=RegistrySpec)
    router: Annotated[SerializeAsAny[RouterSpec], _block_validator(ROUTER_TYPES, RouterSpec)] = (
        Field(default_factory=lambda: _default_block(ROUTER_TYPES))
    )
    metrics: Annotated[
        SerializeAsAny[MetricsSpec], _block_validator(METRICS_TYPES, MetricsSpec)
    ] = Field(default_factory=lambda: _default_block(METRICS_TYPES))
    interval: Interval = 30.0
    # Every stage's min_dwell unless it sets its own (None: stages run their whole dwell).
    min_dwell: Dwell | None = None
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    gates: tuple[GateSpec, ...] = ()
    stages: tuple[StageSpec, ...] = Field(min_length=1)
    policies: Policies = Field(default_factory=Policies)
    promote: PromoteSpec | None = Field(default_factory=PromoteSpec)
    notify: tuple[NotifySpec, ...] = ()
    hooks: HooksSpec = Field(default_factory=HooksSpec)

    def stage_gates(self, index: int) -> tuple[GateSpec, ...]:
        """The gates that judge stage `index`: the plan's gates with the stage's changes."""
        return resolve_stage_gates(self.gates, self.stages[index].gates)

    def stage_min_dwell(self, index: int) -> float | None:
        """How long stage `index` runs before its gates may end it early (None: never)."""
        own = self.stages[index].min_dwell
        return own if own is not None else self.min_dwell

    def stage_index(self, ref: str | int) -> int:
        """A stage by 1-based number or by name."""
        if isinstance(ref, int) or str(ref).isdigit():
            number = int(ref)
            if 1 <= number <= len(self.stages):
                return number - 1
        else:
            for index, stage in enumerate(self.stages):
                if stage.name == ref:
                    return index
        names = ", ".join(s.name for s in self.stages)
        raise ValueError(f"no stage {ref!r} in plan {self.name} (stages: {names})")

    def slo_edges(self) -> tuple[float, ...]:
        """Every latency edge any stage's gates count requests over."""
        edges = {
            gate.slo
            for index in range(len(self.stages))
            for gate in self.stage_gates(index)
            if gate.slo is not None
        }
        return tuple(sorted(edges))


def resolve_stage_gates(
    plan_gates: tuple[GateSpec, ...], overrides: tuple[StageGate, ...]
) -> tuple[GateSpec, ...]:
    gates = list(plan_gates)
    for override in overrides:
        changes = _as_written(override.model_dump(exclude_unset=True, exclude={"metric"}))
        match = _matching_gate(gates, override)
        if match is None:
            gates.append(GateSpec.model_validate({"metric": override.metric, **changes}))
        else:
            merged = {**_as_written(gates[match].model_dump()), **changes}
            gates[match] = GateSpec.model_validate(merged)
    return tuple(gate for gate in gates if gate.enabled)


def _as_written(fields: dict[str, Any]) -> dict[str, Any]:
    """A gate's dumped fields as a plan writes them, so they validate again: a duration
    needs its unit (`slo` is dumped in seconds)."""
    if fields.get("slo") is None:
        return fields
    return {**fields, "slo": f"{fields['slo']!r}s"}


def _matching_gate(gates: list[GateSpec], override: StageGate) -> int | None:
    for index, gate in enumerate(gates):
        if gate.metric != override.metric:
            continue
        if override.slo is None or gate.slo is None or abs(gate.slo - override.slo) < 1e-9:
            return index
    return None


def validate_cidrs(cidrs: tuple[str, ...]) -> list[tuple[int, str]]:
    """Indexes and messages of CIDR entries that do not parse."""
    bad = []
    for index, cidr in enumerate(cidrs):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            bad.append((index, f"expected a network such as 10.0.0.0/8, got {cidr!r}"))
    return bad
