"""Late labels: scored once, per row, for live and mirrored answers."""

from __future__ import annotations

import pytest

from gray.gateway.feedback import AlreadyLabelled, FeedbackStore, LabelShapeError, UnknownRequest
from gray.gateway.stats import GatewayStats


def store(capacity: int = 100) -> tuple[FeedbackStore, GatewayStats]:
    stats = GatewayStats(slo_edges=())
    return FeedbackStore(stats, capacity), stats


def test_a_label_is_scored_against_the_version_that_answered() -> None:
    feedback, stats = store()
    feedback.remember("a", "1", "baseline", 0, [1])
    feedback.remember("b", "2", "candidate", 0, [0, 1, 1])
    assert feedback.label("a", 1) == (1, 1)
    assert feedback.label("b", [0, 0, 1]) == (3, 2)
    view = stats.view()
    assert (view.versions["1"].labelled, view.versions["1"].correct) == (1, 1)
    assert (view.versions["2"].labelled, view.versions["2"].correct) == (3, 2)


def test_unknown_duplicate_and_misshapen_labels_are_refused() -> None:
    feedback, stats = store(capacity=2)
    for request_id in ("a", "b", "c"):
        feedback.remember(request_id, "1", "baseline", 0, [1, 0])
    with pytest.raises(UnknownRequest):
        feedback.label("a", [1, 0])  # pushed out of the window
    with pytest.raises(LabelShapeError):
        feedback.label("b", 1)
    feedback.label("b", [1, 1])
    with pytest.raises(AlreadyLabelled):
        feedback.label("b", [1, 1])
    assert stats.view().versions["1"].labelled == 2


@pytest.mark.parametrize("label_first", [True, False])
def test_mirrored_answers_score_both_sides_whichever_comes_first(label_first: bool) -> None:
    feedback, stats = store()
    feedback.remember("m", "1", "baseline", 0, [1])
    if label_first:
        feedback.label("m", 1)
        feedback.attach_shadow("m", "2", [0])
    else:
        feedback.attach_shadow("m", "2", [0])
        feedback.label("m", 1)
    shadow = stats.view().shadow["2"]
    assert (shadow.baseline.labelled, shadow.baseline.correct) == (1, 1)
    assert (shadow.candidate.labelled, shadow.candidate.correct) == (1, 0)


def test_a_failed_mirror_scores_only_the_baseline_side() -> None:
    feedback, stats = store()
    feedback.remember("m", "1", "baseline", 0, [1])
    feedback.attach_shadow("m", "2", None)
    feedback.label("m", 1)
    shadow = stats.view().shadow["2"]
    assert shadow.baseline.labelled == 1 and shadow.candidate.labelled == 0
