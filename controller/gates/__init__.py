"""Anytime-valid gates: pure functions from cumulative counters to verdicts.

A stage is looked at every interval for its whole dwell, so every test here
stays valid however often it is looked at (Ville's inequality on test
martingales): a good candidate is rolled back with probability at most alpha
over the whole stage, not at each look. No I/O, no clock.

    judge = start_stage(plan.stage_gates(i), plan.alpha, origin, exposure="live")
    judge, verdict = observe(judge, snapshot)      # every interval
    verdict.outcome, verdict.sentence(), judge.to_dict()

The package: `metrics.py` is the table of gate metrics (which family judges each,
what it reads, which margins it takes, how it is worded); `config.py` a gate's
fields, declared once for the plan and the judge; `families/` the kinds of test
behind one protocol (count, shift, share); `stats/` the statistical kernels they
run; `stage.py` the judge of a stage; `verdict.py` and `wording.py` what it says.
See docs/gates.md for the methods and the benchmark.
"""

from gray.controller.gates.stage import JudgeState, judge, observe, start_stage
from gray.controller.gates.verdict import Outcome, StageVerdict, Verdict

__all__ = [
    "JudgeState",
    "Outcome",
    "StageVerdict",
    "Verdict",
    "judge",
    "observe",
    "start_stage",
]
