"""Opt-in micro-batching: requests that queue together are predicted together, and every
client still gets its own answer (and its own mistakes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from gray.gateway.testing import RunningGateway, start_gateway

from .conftest import TOKEN, Pair
from .models import TENSOR, Store, tensor_rows

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def batching(store: Store, pairs: dict[str, Pair]) -> Iterator[RunningGateway]:
    gateway = start_gateway(
        store.uri,
        TENSOR,
        store.root / "batching-gateway",
        token=TOKEN,
        extra_args=["--baseline", "1", "--batch-size", "8"],
    )
    yield gateway
    gateway.stop()


def test_batched_answers_equal_unbatched_ones(
    batching: RunningGateway, pairs: dict[str, Pair]
) -> None:
    rows = np.random.default_rng(11).normal(size=(96, 4)).tolist()
    bodies = [json.dumps({"inputs": [row]}).encode() for row in rows]
    bodies[5] = json.dumps({"inputs": [[1.0, 2.0]]}).encode()  # wrong width: 400 alone
    bodies[9] = b'{"inputs": [[Infinity, 1.0, 2.0, 3.0]]}'  # refused alone
    bodies[13] = json.dumps({"inputs": tensor_rows()[:3].tolist()}).encode()  # three rows

    def send(url: str, body: bytes) -> httpx.Response:
        return httpx.post(
            f"{url}/invocations", content=body, headers={"Content-Type": "application/json"}
        )

    with ThreadPoolExecutor(8) as pool:
        batched = list(pool.map(lambda body: send(batching.url, body), bodies))
    alone = [send(pairs[TENSOR].gateway.url, body) for body in bodies]
    assert [r.status_code for r in batched] == [r.status_code for r in alone]
    assert batched[5].status_code == 400 and batched[9].status_code == 400
    for ours, reference in zip(batched, alone, strict=True):
        if reference.status_code == 200:
            assert ours.json()["predictions"] == reference.json()["predictions"]
    stats = httpx.get(
        f"{batching.url}/admin/stats", headers={"Authorization": f"Bearer {TOKEN}"}
    ).json()
    assert stats["versions"]["1"]["batched_requests"] > 0  # some requests did share a call
    assert stats["versions"]["1"]["bad_requests"] == 2
