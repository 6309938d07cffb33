"""Helpers shared by the gateway tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

TOKEN = "test-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def put_route(
    client: Any,
    route: dict[str, Any],
    epoch: int = 1,
    rollout: str = "r1",
    ttl: float | None = None,
) -> Any:
    """PUT a route, waiting through version_not_ready answers as the router adapter does.

    Without `ttl` the route is held (no expiry)."""
    body: dict[str, Any] = {"route": route, "lease": {"rollout_id": rollout, "epoch": epoch}}
    body.update({"ttl": ttl} if ttl is not None else {"hold": True})
    deadline = time.monotonic() + 10
    while True:
        response = client.put("/admin/route", json=body, headers=ADMIN)
        if response.status_code != 409 or response.json().get("error") != "version_not_ready":
            return response
        if time.monotonic() > deadline:
            raise AssertionError(response.json())
        time.sleep(0.01)


def route(
    baseline: str = "1",
    candidate: str | None = "2",
    weight: float = 0.0,
    mirror: float = 0.0,
    cidr: list[str] | None = None,
    headers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "baseline": baseline,
        "candidate": candidate,
        "weight": weight,
        "mirror": mirror,
        "audience": {"cidr": cidr or [], "headers": headers or {}},
    }


def row(amount: float = 20.0, count: int = 1, country: str = "fr") -> dict[str, Any]:
    return {"amount": amount, "count": count, "country": country}


def split_body(*rows: dict[str, Any]) -> dict[str, Any]:
    columns = ["amount", "count", "country"]
    return {
        "dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in rows]}
    }
