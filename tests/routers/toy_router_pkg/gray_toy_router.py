"""A router type and a metrics type for gray, declared from outside gray by entry points.

The "endpoint" is a JSON file holding the route and lease in force, with the
gateway's fencing rule (a write under an older lease is refused); the metrics
source counts a fixed number of requests per look, split by the route in that
file, each version failing at the rate the plan gives it. Nothing here is gray's
but the two spec base classes, the value types and the errors.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Literal

from gray.controller.errors import LeaseConflictError
from gray.controller.plan.models import MetricsSpec, Plan, RouterSpec
from gray.controller.types import Applied, Lease, Pair, RouteSpec, Snapshot, VersionCounters


class ToyRouterSpec(RouterSpec):
    """`router: {type: toy, path: route.json, baseline: "1"}`"""

    type: Literal["toy"] = "toy"
    path: str
    baseline: str = "1"  # served before any route is written

    def build(self) -> ToyRouter:
        return ToyRouter(Path(self.path), self.baseline)

    def describe(self) -> str:
        return f"toy endpoint {self.path}"


class ToyRouter:
    def __init__(self, path: Path, baseline: str) -> None:
        self.path = path
        if not path.exists():
            self._write(Applied(RouteSpec(baseline=baseline), None))

    def apply(self, route: RouteSpec, lease: Lease, ttl: float | None = None) -> Applied:
        self._fence(lease)
        return self._write(Applied(route, lease))

    def renew(self, lease: Lease, ttl: float) -> Applied:
        current = self.read()
        if current.lease != lease:
            raise LeaseConflictError(f"lease {lease} is not the one in force")
        return current

    def read(self) -> Applied:
        return Applied.from_dict(json.loads(self.path.read_text()))

    def rollback(self, lease: Lease | None) -> Applied:
        current = self.read()
        held = current.lease.epoch if current.lease else 0
        epoch = max(held, lease.epoch if lease else 0) + 1
        writer = lease.rollout_id if lease else "operator"
        return self._write(Applied(current.route.rolled_back(), Lease(writer, epoch)))

    def ensure_loaded(self, version: str) -> str | None:
        return None

    def _fence(self, lease: Lease) -> None:
        current = self.read().lease
        if current is not None and (
            lease.epoch < current.epoch
            or (lease.epoch == current.epoch and lease.rollout_id != current.rollout_id)
        ):
            raise LeaseConflictError(f"lease {lease} is older than {current}")

    def _write(self, applied: Applied) -> Applied:
        self.path.write_text(json.dumps(applied.to_dict()))
        return applied


class ToyMetricsSpec(MetricsSpec):
    """`metrics: {type: toy, route: route.json, error_rates: {"1": 0.01, "2": 0.2}}`"""

    type: Literal["toy"] = "toy"
    route: str
    error_rates: dict[str, float]
    requests_per_look: int = 2000

    def build(self, plan: Plan) -> ToyMetrics:
        return ToyMetrics(Path(self.route), self.error_rates, self.requests_per_look)


class ToyMetrics:
    def __init__(self, route: Path, error_rates: dict[str, float], requests: int) -> None:
        self.route, self.error_rates, self.requests = route, error_rates, requests
        self.totals: dict[str, float] = {}

    def snapshot(self, versions: Pair) -> Snapshot:
        route = Applied.from_dict(json.loads(self.route.read_text())).route
        shares = {route.baseline: 1.0 - route.weight}
        if route.candidate:
            shares[route.candidate] = shares.get(route.candidate, 0.0) + route.weight
        for version, share in shares.items():
            self.totals[version] = self.totals.get(version, 0.0) + self.requests * share
        return Snapshot(
            taken_at=time.time(),
            baseline=self._counters(versions.baseline),
            candidate=self._counters(versions.candidate),
        )

    def _counters(self, version: str) -> VersionCounters:
        requests = self.totals.get(version, 0.0)
        errors = requests * self.error_rates.get(version, 0.0)
        return VersionCounters(requests=int(requests), errors=int(errors))
