"""Every gate family through the one protocol the judge uses: start, update, verdict,
to_dict and from_dict, with no knowledge of which family it is."""

from __future__ import annotations

import json
import math

import pytest

from gray.controller.gates import Outcome
from gray.controller.gates.config import GateConfig
from gray.controller.gates.families import FAMILIES, GateFamily, gate_from_dict, start_gate
from gray.controller.gates.increments import Increment
from gray.controller.types import VersionCounters

from ..conftest import gate

BUCKETS = ((0.05, 300), (0.1, 450), (math.inf, 500))
# One gate of each family, and one look of traffic it sees (mirrored pairs included).
GATES = {
    "count": gate("error_rate", max_increase="10%"),
    "shift": gate("latency_distribution", tolerance="5%"),
    "share": gate("disagreement", max="5%"),
}
LOOK = Increment(
    candidate=VersionCounters(requests=500, errors=40, latency_buckets=BUCKETS),
    baseline=VersionCounters(requests=500, errors=5, latency_buckets=BUCKETS),
    pairs=500,
    disagreements=60,
)


def test_every_family_is_exercised_here() -> None:
    assert set(GATES) == set(FAMILIES)


@pytest.fixture(params=sorted(GATES))
def fresh(request: pytest.FixtureRequest) -> GateFamily:
    config = GateConfig.from_spec(GATES[request.param], 0.05)
    return start_gate(config, VersionCounters())


def test_a_fresh_gate_has_no_data(fresh: GateFamily) -> None:
    assert fresh.family == next(n for n, g in GATES.items() if g.metric == fresh.config.metric)
    verdict = fresh.verdict()
    assert verdict.outcome is Outcome.NODATA
    assert (verdict.gate, verdict.metric) == (fresh.config.key, fresh.config.metric)


def test_a_gate_judges_a_look_and_keeps_what_it_saw(fresh: GateFamily) -> None:
    looked = fresh.update(LOOK)
    assert looked.verdict().outcome is not Outcome.NODATA
    assert looked.update(LOOK).verdict().counts != looked.verdict().counts
    assert fresh.verdict().outcome is Outcome.NODATA  # states are values: the old one stands


def test_a_gate_survives_json_and_judges_alike_after_it(fresh: GateFamily) -> None:
    looked = fresh.update(LOOK)
    data = json.loads(json.dumps(looked.to_dict(), allow_nan=False))
    assert data["family"] == looked.family
    restored = gate_from_dict(data)
    assert type(restored) is type(looked)
    assert restored == looked
    assert restored.update(LOOK).verdict() == looked.update(LOOK).verdict()


def test_a_stored_gate_of_an_unknown_family_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown gate family 'quantile'"):
        gate_from_dict({"family": "quantile", "config": {}})
