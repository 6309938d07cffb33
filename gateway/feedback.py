"""Late labels: remember recent answers by request id and score them when a label arrives."""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import Any

from gray.gateway.inputs import label_matches
from gray.gateway.stats import GatewayStats


class UnknownRequest(KeyError):
    """No answer with that request id is remembered (never seen, or too old)."""


class AlreadyLabelled(Exception):
    """The request was labelled before; a second label would count it twice."""


class LabelShapeError(ValueError):
    """The label does not line up with the rows the request predicted."""


@dataclass
class _Answer:
    version: str
    role: str
    group: int  # hash group of the request's routing key: labels are counted per group too
    outputs: list[Any]
    labels: list[Any] | None = None
    shadow_candidate: str | None = None
    shadow_outputs: list[Any] | None = None
    shadow_attached: bool = False


class FeedbackStore:
    """The last `capacity` answers; labels for older ones are refused as unknown."""

    def __init__(self, stats: GatewayStats, capacity: int) -> None:
        self._stats = stats
        self._capacity = capacity
        self._answers: collections.OrderedDict[str, _Answer] = collections.OrderedDict()
        self._lock = threading.Lock()

    def remember(
        self, request_id: str, version: str, role: str, group: int, outputs: list[Any]
    ) -> None:
        with self._lock:
            self._answers[request_id] = _Answer(version, role, group, outputs)
            while len(self._answers) > self._capacity:
                self._answers.popitem(last=False)

    def attach_shadow(self, request_id: str, candidate: str, outputs: list[Any] | None) -> None:
        """The mirrored candidate finished (`outputs` None when it failed)."""
        with self._lock:
            answer = self._answers.get(request_id)
            if answer is None:
                return
            answer.shadow_candidate = candidate
            answer.shadow_outputs = outputs
            answer.shadow_attached = True
            labels = answer.labels
        if labels is not None:
            self._score_shadow(answer, labels)

    def label(self, request_id: str, label: Any) -> tuple[int, int]:
        """Score one label; returns (rows labelled, rows correct)."""
        with self._lock:
            answer = self._answers.get(request_id)
            if answer is None:
                raise UnknownRequest(request_id)
            if answer.labels is not None:
                raise AlreadyLabelled(request_id)
            labels = _per_row(label, len(answer.outputs))
            answer.labels = labels
            shadow_ready = answer.shadow_attached
        correct = _count_correct(answer.outputs, labels)
        self._stats.record_labels(answer.version, answer.role, len(labels), correct, answer.group)
        if shadow_ready:
            self._score_shadow(answer, labels)
        return len(labels), correct

    def _score_shadow(self, answer: _Answer, labels: list[Any]) -> None:
        candidate = answer.shadow_candidate
        if candidate is None:
            return
        correct = _count_correct(answer.outputs, labels)
        group = answer.group
        self._stats.record_shadow_labels(candidate, "baseline", len(labels), correct, group)
        if answer.shadow_outputs is not None and len(answer.shadow_outputs) == len(labels):
            shadow_correct = _count_correct(answer.shadow_outputs, labels)
            self._stats.record_shadow_labels(
                candidate, "candidate", len(labels), shadow_correct, group
            )


def _per_row(label: Any, rows: int) -> list[Any]:
    if isinstance(label, list) and len(label) == rows and rows != 1:
        return list(label)
    if rows == 1:
        return [label[0] if isinstance(label, list) and len(label) == 1 else label]
    raise LabelShapeError(f"the request predicted {rows} rows; send a list of {rows} labels")


def _count_correct(outputs: list[Any], labels: list[Any]) -> int:
    return sum(
        1 for output, label in zip(outputs, labels, strict=False) if label_matches(output, label)
    )
