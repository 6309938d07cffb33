"""The runner asks a fleet router to repair its replicas at every look, before the counters
are read, and journals each repair; a router of one endpoint is never asked."""

from __future__ import annotations

from pathlib import Path

from gray.controller.journal import EventKind
from gray.controller.routers.base import FleetRouter
from gray.controller.routers.gateway_fleet import Repair, RepairReport, ReplicaOutcome
from gray.controller.types import Applied, Lease, Pair, RouteSpec, Snapshot
from tests.fakes import FakeMetrics, FakeRouter
from tests.loop.conftest import Harness


class LosingFleet(FakeRouter):
    """A fake fleet whose second replica comes back without the route at the third look."""

    def __init__(self, baseline: str, calls: list[str]) -> None:
        super().__init__(baseline)
        self.outcomes: tuple[ReplicaOutcome, ...] = ()
        self.calls = calls
        self.repairs_asked: list[tuple[Lease, float | None]] = []

    def repair(self, lease: Lease, ttl: float | None) -> RepairReport:
        self.calls.append("repair")
        self.repairs_asked.append((lease, ttl))
        if len(self.repairs_asked) != 3:
            return RepairReport()
        found = Applied(RouteSpec(baseline=self.applied.route.baseline), None)
        return RepairReport((Repair("http://gw-2:8080", found, self.applied),), ("gw-3 away",))


class ReadLog(FakeMetrics):
    def __init__(self, calls: list[str], *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.calls = calls

    def snapshot(self, versions: Pair) -> Snapshot:
        self.calls.append("snapshot")
        return super().snapshot(versions)


def test_each_look_repairs_before_it_reads_the_counters_and_journals_the_repair(
    tmp_path: Path,
) -> None:
    calls: list[str] = []
    harness = Harness(tmp_path)
    fleet = LosingFleet("1", calls)
    assert isinstance(fleet, FleetRouter) and not isinstance(FakeRouter("1"), FleetRouter)
    harness.router = fleet
    harness.metrics = ReadLog(
        calls, harness.clock, fleet, rps=10000, behaviour=harness.metrics.behaviour
    )
    warnings: list[str] = []
    result = harness.runner(on_warning=warnings.append).run(harness.start())

    assert result.state.phase.value == "promoted"
    looks = [i for i, call in enumerate(calls) if call == "repair"]
    assert looks and all(calls[i + 1] == "snapshot" for i in looks)
    assert {lease for lease, _ in fleet.repairs_asked} == {Lease("fraud-test-0001", 1)}
    record = harness.journal.load("fraud-test-0001")
    assert record is not None
    repaired = [e for e in record.events if e.event is EventKind.ROUTE_REPAIRED]
    assert len(repaired) == 1
    assert repaired[0].data["replica"] == "http://gw-2:8080"
    assert "replica http://gw-2:8080 held v1 under no lease" in repaired[0].reason
    assert "gw-3 away" in warnings
