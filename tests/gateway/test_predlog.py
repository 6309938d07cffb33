"""The prediction log: JSON lines, rotation by size, reading samples back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gray.controller.errors import GatewayError
from gray.gateway.predlog import PredictionLog
from gray.gateway.samples import log_files, read_samples


def record(number: int, kind: str = "prediction", **extra: object) -> dict[str, object]:
    return {"kind": kind, "request_id": f"r{number}", "version": "1", "output": [number], **extra}


def test_lines_are_written_and_rotated_by_size(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "predictions", max_bytes=4096, backups=2)
    log.start()
    try:
        for number in range(400):
            log.write(record(number, padding="x" * 40))
        log.flush()
    finally:
        log.stop()
    files = log_files(tmp_path)
    assert [p.name for p in files] == [
        "predictions.jsonl.2",
        "predictions.jsonl.1",
        "predictions.jsonl",
    ]
    assert all(p.stat().st_size < 4096 + 200 for p in files)
    lines = [json.loads(line) for p in files for line in p.read_text().splitlines()]
    numbers = [int(str(line["request_id"])[1:]) for line in lines]
    assert numbers == sorted(numbers) and numbers[-1] == 399  # oldest rotated away


def test_samples_filter_by_kind_version_and_disagreement(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "predictions", max_bytes=1 << 20, backups=1)
    log.start()
    try:
        log.write(record(1))
        log.write(
            {
                "kind": "shadow",
                "request_id": "s1",
                "agree": False,
                "baseline": {"version": "1"},
                "candidate": {"version": "2"},
            }
        )
        log.write(
            {"kind": "shadow", "request_id": "s2", "agree": True, "candidate": {"version": "2"}}
        )
        log.write({"kind": "prediction", "request_id": "nan", "output": [float("nan")]})
        log.flush()
    finally:
        log.stop()
    ids = lambda records: [r["request_id"] for r in records]  # noqa: E731
    assert ids(read_samples(tmp_path, count=10)) == ["r1", "s1", "s2", "nan"]
    assert ids(read_samples(tmp_path, count=10, kind="shadow")) == ["s1", "s2"]
    assert ids(read_samples(tmp_path, count=10, version="2")) == ["s1", "s2"]
    assert ids(read_samples(tmp_path, count=10, only_disagreements=True)) == ["s1"]
    assert ids(read_samples(tmp_path, count=1)) == ["nan"]
    assert ids(log.recent(2)) == ["s2", "nan"]
    assert ids(log.recent(10, kind="shadow", version="1")) == ["s1"]


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "predictions", max_bytes=1 << 20, backups=1, queue_size=5)
    for number in range(8):  # not started: nothing drains the queue
        log.write(record(number))
    assert log.dropped == 3


def test_reading_a_missing_log_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GatewayError, match="no prediction log"):
        read_samples(tmp_path, count=5)
