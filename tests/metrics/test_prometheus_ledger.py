"""The Prometheus source's per-series ledger: resets, gaps, vanished and new series."""

from __future__ import annotations

from gray.controller.metrics.prometheus import SeriesLedger
from gray.controller.metrics.prometheus.promql import Series

A = (("instance", "gw-1:8080"), ("job", "gray"), ("version", "1"))
B = (("instance", "gw-2:8080"), ("job", "gray"), ("version", "1"))


def total(ledger: SeriesLedger) -> float:
    return sum(value for _, value in ledger.counted("requests"))


def started(levels: dict[tuple[tuple[str, str], ...], float], at: float = 100.0) -> SeriesLedger:
    ledger = SeriesLedger()
    ledger.start("requests", [Series(labels, ((at, value),)) for labels, value in levels.items()])
    return ledger


def test_the_first_look_counts_each_series_level() -> None:
    assert total(started({A: 40, B: 2})) == 42


def test_a_rise_adds_the_difference_and_an_overlapping_window_adds_nothing_twice() -> None:
    ledger = started({A: 40})
    ledger.advance("requests", [Series(A, ((90.0, 38), (101.0, 45), (102.0, 50)))])
    assert total(ledger) == 50
    # The next look's window reaches back over samples already counted.
    ledger.advance("requests", [Series(A, ((101.0, 45), (102.0, 50), (103.0, 51)))])
    assert total(ledger) == 51


def test_a_reset_adds_the_new_value_as_counted_from_zero() -> None:
    ledger = started({A: 40, B: 10})
    # gw-1 restarts between 102 and 103: 40 -> 48, then 3, 7.
    ledger.advance("requests", [Series(A, ((102.0, 48), (103.0, 3), (104.0, 7)))])
    ledger.advance("requests", [Series(B, ((102.0, 12),))])
    assert total(ledger) == 48 + 7 + 12
    # A plain sum of current values would now read 19: fewer than before the restart.


def test_a_series_that_disappears_keeps_what_it_counted() -> None:
    ledger = started({A: 40, B: 10})
    ledger.advance("requests", [Series(A, ((101.0, 41),)), Series(B, ((101.0, 15),))])
    ledger.advance("requests", [Series(A, ((102.0, 43),))])  # gw-2 is gone
    assert total(ledger) == 43 + 15


def test_a_series_back_after_a_gap_continues_from_its_last_value() -> None:
    ledger = started({A: 40})
    ledger.advance("requests", [Series(A, ((101.0, 44),))])
    ledger.advance("requests", [])  # no samples: scrapes failed
    ledger.advance("requests", [Series(A, ((160.0, 50),))])  # back, not restarted
    assert total(ledger) == 50
    ledger.advance("requests", [Series(A, ((161.0, 2),))])  # back after a restart
    assert total(ledger) == 52


def test_a_new_series_counts_from_zero() -> None:
    ledger = started({A: 40})
    # A replica started after the first look, or a version's first request on one.
    ledger.advance("requests", [Series(B, ((105.0, 1), (106.0, 4)))])
    assert total(ledger) == 44


def test_totals_never_go_down_whatever_the_samples_do() -> None:
    ledger = started({A: 5, B: 5})
    seen = [total(ledger)]
    values = [9, 3, 3, 0, 8, 1, 12, 12, 2]
    for step, value in enumerate(values):
        at = 101.0 + step
        ledger.advance("requests", [Series(A, ((at, value),)), Series(B, ((at, step),))])
        seen.append(total(ledger))
    assert seen == sorted(seen)
    # A: 5, then 9 (+4), 3 (+3), 3, 0 (+0), 8 (+8), 1 (+1), 12 (+11), 12, 2 (+2): 34
    # B: 5, then 0 (a reset: +0), 1, 2, ..., 8 (+8): 13
    assert seen[-1] == 34 + 13


def test_starting_again_forgets_the_earlier_series_of_that_query() -> None:
    ledger = started({A: 40, B: 10})
    ledger.start("requests", [Series(A, ((200.0, 41),))])
    assert total(ledger) == 41


def test_a_new_start_time_is_a_reset_even_when_the_counter_rose() -> None:
    target = ("gray", "gw-1:8080")
    ledger = SeriesLedger()
    ledger.start("requests", [Series(A, ((100.0, 4),))], {target: {100.0: 1000.0}})
    # gw-1 restarted at 1050 and answered 9 requests before its first scrape: 4 -> 9
    # looks like 5 more, but the start time says 9 new ones.
    starts = {target: {101.0: 1000.0, 150.0: 1050.0, 151.0: 1050.0}}
    ledger.advance("requests", [Series(A, ((101.0, 4), (150.0, 9), (151.0, 10)))], starts)
    assert total(ledger) == 4 + 9 + 1


def test_without_start_times_only_a_fall_is_a_reset() -> None:
    ledger = started({A: 4})
    ledger.advance("requests", [Series(A, ((150.0, 9),))])
    assert total(ledger) == 9
