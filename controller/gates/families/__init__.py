"""Gate families: the kinds of test a gate runs, each behind the same small protocol.

- `count`: events against exposures per version (error, bad-request, slow-request,
  wrong-prediction rates, accuracy): the ratio of the two rates (`stats.counts`);
- `shift`: how far the candidate's latency CDF lies below the baseline's (`stats.cdf`);
- `share`: the share of mirrored pairs whose two answers differ (`stats.proportion`).

The metric table (`gates/metrics.py`) says which family judges each metric. A
family's state is frozen and JSON-safe: the judge keeps it between looks and the
journal stores it, tagged with the family's name.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, Self

from gray.controller.gates.config import GateConfig
from gray.controller.gates.families.count import CountGate
from gray.controller.gates.families.share import ShareGate
from gray.controller.gates.families.shift import ShiftGate
from gray.controller.gates.increments import Increment
from gray.controller.gates.metrics import metric
from gray.controller.gates.verdict import Verdict
from gray.controller.types import VersionCounters


class GateFamily(Protocol):
    """One gate's state in a stage, from its start through every look."""

    family: ClassVar[str]  # the name the judge state stores it under
    config: GateConfig

    @classmethod
    def start(cls, config: GateConfig, baseline_before: VersionCounters) -> Self:
        """A fresh gate; `baseline_before` is the baseline's counters when the stage began."""
        ...

    def update(self, seen: Increment) -> Self:
        """The gate after one more look's traffic."""
        ...

    def verdict(self) -> Verdict:
        """What the gate says from everything it has seen."""
        ...

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self: ...


FAMILIES: dict[str, type[GateFamily]] = {
    family.family: family for family in (CountGate, ShiftGate, ShareGate)
}


def start_gate(config: GateConfig, baseline_before: VersionCounters) -> GateFamily:
    """A fresh gate of the family the metric table names for the gate's metric."""
    return FAMILIES[metric(config.metric).family].start(config, baseline_before)


def gate_from_dict(data: dict[str, Any]) -> GateFamily:
    """A gate as `to_dict` wrote it."""
    name = data.get("family")
    family = FAMILIES.get(str(name))
    if family is None:
        raise ValueError(f"unknown gate family {name!r} in judge state")
    return family.from_dict(data)
