"""benchmarks/gateway.py runs end to end (one model, a fraction of a second of load)."""

from __future__ import annotations

import re

import pytest

from tests.scripts import load_benchmark


@pytest.mark.slow
def test_the_benchmark_measures_both_servers_and_prints_the_comparison(
    capsys: pytest.CaptureFixture[str],
) -> None:
    benchmark = load_benchmark("gateway")
    args = ["--models", "tensor", "--seconds", "0.5", "--warmup", "0.2", "--rounds", "1"]
    args += ["--batch-size", "1"]  # the batching variant is the same code with one more server
    code = benchmark.main([*args, "--tool", "python"])
    out = capsys.readouterr().out
    assert code in (0, 1)  # 1: the speed target was not met on this run (not judged here)
    assert "gray gateway" in out and "mlflow models serve" in out
    for label in ("requests/s", "p50 latency (ms)", "p99 latency (ms)"):
        assert re.search(rf"^{re.escape(label)}\s+[\d.]+\s+[\d.]+\s+[\d.]+$", out, re.M), out
    assert re.search(r"^non-2xx answers\s+0\s+0", out, re.M), out


def test_an_unknown_model_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load_benchmark("gateway").main(["--models", "tensor,forest"])
    assert exit_info.value.code == 2
    assert "forest" in capsys.readouterr().err
