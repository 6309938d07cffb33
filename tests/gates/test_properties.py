"""Properties over many generated stages: evidence is never negative, and a candidate with
more errors is never judged better than one with fewer."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from gray.controller import gates
from gray.controller.gates import Outcome

from .conftest import Traffic, gate

RANK = {Outcome.PASS: 0, Outcome.INCONCLUSIVE: 1, Outcome.NODATA: 1, Outcome.FAIL: 2}

look = st.tuples(
    st.integers(0, 20_000),  # candidate requests
    st.floats(0.0, 0.2),  # candidate error rate
    st.integers(0, 20_000),  # baseline requests
    st.floats(0.0, 0.2),  # baseline error rate
)
stages = st.lists(look, min_size=1, max_size=6)
gate_specs = st.sampled_from(
    [
        {"max_increase": "10%"},
        {"max_increase": "50%", "min_samples": 1000},
        {"max_increase_abs": "0.5%"},
        {"max_increase": "20%", "max_increase_abs": "0.1%"},
    ]
)


def run(spec: dict, looks: list[tuple[int, int, int, int]]) -> gates.Verdict:
    traffic = Traffic()
    state = gates.start_stage(
        [gate("error_rate", **spec)], 0.05, traffic.snapshot(), exposure="live"
    )
    verdict = gates.judge(state)
    for nc, c, nb, b in looks:
        traffic.add("candidate", requests=nc, errors=c).add("baseline", requests=nb, errors=b)
        state, verdict = gates.observe(state, traffic.snapshot())
    return verdict.verdicts[0]


def counted(raw: list[tuple[int, float, int, float]]) -> list[tuple[int, int, int, int]]:
    return [(nc, round(nc * pc), nb, round(nb * pb)) for nc, pc, nb, pb in raw]


@settings(max_examples=60, deadline=None)
@given(spec=gate_specs, raw=stages)
def test_evidence_is_never_negative_and_p_values_are_probabilities(spec: dict, raw: list) -> None:
    verdict = run(spec, counted(raw))
    if verdict.e_value is not None:
        assert verdict.e_value >= 0
    if verdict.p_value is not None:
        assert 0 <= verdict.p_value <= 1
    if verdict.interval is not None:
        assert 0 <= verdict.interval[0] <= verdict.interval[1]
    json.dumps(verdict.to_dict(), allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(spec=gate_specs, raw=stages, extra=st.lists(st.integers(0, 300), min_size=6, max_size=6))
def test_more_candidate_errors_never_make_a_fail_into_a_pass(
    spec: dict, raw: list, extra: list[int]
) -> None:
    fewer = counted(raw)
    more = [
        (nc, min(nc, c + add), nb, b) for (nc, c, nb, b), add in zip(fewer, extra, strict=False)
    ]
    judged_fewer, judged_more = run(spec, fewer), run(spec, more)
    assert RANK[judged_more.outcome] >= RANK[judged_fewer.outcome]
    if judged_fewer.interval and judged_more.interval:
        assert judged_more.interval[0] >= judged_fewer.interval[0] - 1e-12
        assert judged_more.interval[1] >= judged_fewer.interval[1] - 1e-12


@settings(max_examples=40, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.integers(0, 5000), st.floats(0, 0.3)), min_size=1, max_size=5),
    extra=st.lists(st.integers(0, 200), min_size=5, max_size=5),
)
def test_more_disagreements_never_make_a_fail_into_a_pass(pairs: list, extra: list) -> None:
    def judge(rows: list[tuple[int, int]]) -> gates.Verdict:
        traffic = Traffic()
        state = gates.start_stage(
            [gate("disagreement", max="5%")], 0.05, traffic.snapshot(), exposure="shadow"
        )
        verdict = gates.judge(state)
        for n, d in rows:
            traffic.mirror(n, d)
            state, verdict = gates.observe(state, traffic.snapshot())
        return verdict.verdicts[0]

    fewer = [(n, round(n * q)) for n, q in pairs]
    more = [(n, min(n, d + add)) for (n, d), add in zip(fewer, extra, strict=False)]
    judged_fewer, judged_more = judge(fewer), judge(more)
    assert RANK[judged_more.outcome] >= RANK[judged_fewer.outcome]
    for verdict in (judged_fewer, judged_more):
        if verdict.e_value is not None:
            assert verdict.e_value >= 0
