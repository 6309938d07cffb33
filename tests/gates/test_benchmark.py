"""The gates benchmark runs end to end (tiny settings) and prints the documented JSON shape."""

from __future__ import annotations

import json

import pytest

from tests.scripts import load_benchmark


@pytest.mark.slow
def test_benchmark_prints_one_json_object_of_the_documented_shape(
    capsys: pytest.CaptureFixture[str],
) -> None:
    benchmark = load_benchmark("gates")
    args = ["--json", "--aa-runs", "40", "--ab-runs", "30", "--dwell", "480", "--seed", "3"]
    args += ["--clustered-runs", "30"]
    assert benchmark.main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["alpha"] == 0.05
    assert set(result["aa"]) == {"gray", "kayenta", "flagger"}
    for row in result["aa"].values():
        assert row["runs"] == 40
        low, high = row["wilson"]
        assert 0 <= low <= row["rate"] <= high <= 1
    assert set(result["ab"]) == {
        "errors-2x-1pct",
        "errors-2x-0.1pct",
        "latency+20pct",
        "accuracy-1pt",
    }
    for judges in result["ab"].values():
        assert {"gray", "kayenta", "flagger", "oracle"} <= set(judges)
        for row in judges.values():
            assert 0 <= row["power"] <= 1
            assert {"median_requests", "p90_requests", "median_seconds"} <= set(row)
    # A 2x error rate at 1 % and a 50 % share is found by gray within the short dwell,
    # by routing-key group too.
    assert result["ab"]["errors-2x-1pct"]["gray"]["power"] > 0.8
    assert result["ab"]["errors-2x-1pct"]["gray_grouped_single_gate"]["power"] > 0.8
    assert len(result["aa_clustered"]) == 4
    for row in result["aa_clustered"].values():
        assert set(row["rollout"]) == {"grouped", "per_request"}
        assert set(row["by_share"]) == {"0.05", "0.2", "0.5"}
    # What a good candidate saves on each example plan with its min_dwell.
    early = result["early_advance"]
    assert set(early["by_rps"]) == {"50", "500", "5000"}
    for plans in early["by_rps"].values():
        assert set(plans) == {"cold-start", "incremental", "model-replacement"}
        for row in plans.values():
            assert 0 <= row["saved_share"] < 1
            assert row["mean_seconds"] <= row["dwell_seconds"]
            assert all(0 <= stage["ended_early"] <= 1 for stage in row["stages"])


def test_wilson_interval_matches_the_textbook_values() -> None:
    benchmark = load_benchmark("gates")
    low, high = benchmark.wilson(31, 2000)
    assert low == pytest.approx(0.01094, abs=5e-5)
    assert high == pytest.approx(0.02192, abs=5e-5)
    assert benchmark.wilson(0, 2000)[0] == pytest.approx(0.0, abs=1e-12)
