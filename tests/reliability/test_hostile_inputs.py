"""Inputs no version can use are the client's mistake, never evidence against the candidate.

A real gateway on a copy of the demo registry, with a second `bad_raises` version so a
baseline can fail the same inputs as the candidate. Non-finite numbers (and anything a
version's own input checks refuse) must be 400 and bad requests, never 500 and errors:
otherwise any client could roll back a good candidate. The candidate's real failures
are replayed on the baseline after the answer, and the counts say how many the
baseline fails too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gray.gateway.testing import RunningGateway, start_gateway
from tests.conftest import copy_sqlite_registry

pytestmark = pytest.mark.slow

TOKEN = "hostile-token"


@dataclass(frozen=True)
class Stack:
    gateway: RunningGateway
    versions: dict[str, str]  # role -> version; "bad_raises_2" is a second bad_raises
    row: dict[str, float]  # one raw row every version answers

    def route(self, baseline: str, candidate: str, epoch: int) -> None:
        body = {
            "route": {"baseline": baseline, "candidate": candidate, "weight": 1.0},
            "lease": {"rollout_id": "hostile-inputs", "epoch": epoch},
            "hold": True,
        }
        headers = self.gateway.headers
        deadline = time.monotonic() + 60
        while True:
            response = httpx.put(f"{self.gateway.url}/admin/route", json=body, headers=headers)
            if response.status_code != 409 or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # the candidate is still loading
        assert response.status_code == 200, response.text

    def send(self, body: bytes, content_type: str = "application/json") -> httpx.Response:
        return httpx.post(
            f"{self.gateway.url}/invocations",
            content=body,
            headers={"Content-Type": content_type, "X-User-Id": "someone"},
            timeout=30,
        )

    def counters(self, version: str) -> dict[str, Any]:
        response = httpx.get(f"{self.gateway.url}/admin/stats", headers=self.gateway.headers)
        response.raise_for_status()
        return response.json()["versions"].get(version, {})


@pytest.fixture(scope="module")
def stack(demo_registry: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from gray.demo.models import demo_dataset, register_demo_models

    root = copy_sqlite_registry(demo_registry.root, tmp_path_factory.mktemp("hostile") / "reg")
    uri = f"sqlite:///{root}/mlflow.db"
    versions = dict(demo_registry.versions)
    second = register_demo_models(uri, demo_registry.model_name, which=("bad_raises",))
    versions["bad_raises_2"] = second["bad_raises"]
    features, _ = demo_dataset()
    row = {name: float(value) for name, value in features.median().items()}
    gateway = start_gateway(uri, demo_registry.model_name, Path(root) / "gateway", token=TOKEN)
    try:
        yield Stack(gateway, versions, row)
    finally:
        gateway.stop()


def records(row: dict[str, float], **raw_values: str) -> bytes:
    """One record as JSON, with some values written as raw JSON text (Infinity, 1e309...)."""
    text = json.dumps({"dataframe_records": [{**row, **dict.fromkeys(raw_values, "@")}]})
    for name, value in raw_values.items():
        text = text.replace(f'"{name}": "@"', f'"{name}": {value}', 1)
    return text.encode()


def test_non_finite_numbers_and_refused_inputs_are_bad_requests(stack: Stack) -> None:
    baseline, candidate = stack.versions["baseline"], stack.versions["good"]
    stack.route(baseline, candidate, epoch=1)
    assert stack.send(records(stack.row)).status_code == 200
    before = stack.counters(candidate)
    columns = ",".join(stack.row)
    values = ",".join("inf" if i == 0 else str(v) for i, v in enumerate(stack.row.values()))
    hostile = [
        (records(stack.row, mean_radius="Infinity"), "application/json", "non-finite"),
        (records(stack.row, mean_radius="-Infinity"), "application/json", "non-finite"),
        (records(stack.row, worst_area="1e309"), "application/json", "non-finite"),
        (records(stack.row, mean_radius="NaN"), "application/json", "NaN"),
        (f"{columns}\n{values}\n".encode(), "text/csv", "non-finite"),
        (json.dumps({"inputs": [[1.0, 2.0]]}).encode(), "application/json", "by position"),
        ('{"dataframe_records": []}'.encode("utf-16"), "application/json", "UTF-8"),
    ]
    for body, content_type, reason in hostile:
        response = stack.send(body, content_type)
        assert response.status_code == 400, response.text
        assert reason in response.json()["message"]
        assert response.headers["X-Model-Version"] == candidate
    after = stack.counters(candidate)
    assert after["errors"] == before["errors"]
    assert after["bad_requests"] == before["bad_requests"] + len(hostile)


def wait_for_replays(stack: Stack, version: str, expected: int) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        counters = stack.counters(version)
        if counters.get("replayed_failures", 0) >= expected or time.monotonic() > deadline:
            return counters
        time.sleep(0.1)


def test_candidate_failures_are_replayed_on_the_baseline(stack: Stack) -> None:
    candidate = stack.versions["bad_raises_2"]
    too_large = records({**stack.row, "worst_area": 1e6})  # beyond the guarded range

    stack.route(stack.versions["bad_raises"], candidate, epoch=2)
    for _ in range(3):
        response = stack.send(too_large)
        assert response.status_code == 500 and response.json()["error"] == "model_error"
    shared = wait_for_replays(stack, candidate, 3)
    assert shared["replayed_failures"] == 3
    assert shared["baseline_also_failed"] == 3  # the same input breaks the baseline too

    stack.route(stack.versions["baseline"], candidate, epoch=3)
    for _ in range(2):
        assert stack.send(too_large).status_code == 500
    own = wait_for_replays(stack, candidate, 5)
    assert own["replayed_failures"] == 5
    assert own["baseline_also_failed"] == 3  # the healthy baseline answers these
    assert own["errors"] == 5
