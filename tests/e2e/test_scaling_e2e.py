"""gray in front of a fleet, end to end (docs/scaling.md): three real gateway replicas
behind a round-robin HAProxy, a real Prometheus scraping them, a plan with
`router: {type: gateway, urls: [...]}` and `metrics: {type: prometheus, preset: gray}`,
and users' traffic through HAProxy.

- a bad candidate is rolled back by its error gate, and no replica answers with it
  after the rollback returned;
- a good candidate is promoted while one replica is SIGKILLed mid-stage and restarted
  on its state directory (it comes back with the route: nothing to repair) and another
  comes back with its state lost (its route is repaired, and the repair journaled);
- `gray rollback` with a replica down writes the other two, names the missing one and
  exits 4; once it is back, `gray rollback` again reaches all three.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import pytest

from gray.controller.registry import Registry
from tests.conftest import DemoRegistry, copy_sqlite_registry
from tests.e2e.conftest import read_events
from tests.gateway_fleet import GatewayReplicas, round_robin_haproxy
from tests.haproxy_server import RunningHaproxy
from tests.prometheus_server import RunningPrometheus

pytestmark = pytest.mark.slow

ALIAS = "fleet-champion"
JOB = "gray-fleet"
SENDERS = 3
PLAN = """\
name: fleet-{name}
model: {{name: {model}, baseline: "@{alias}", candidate: "{candidate}", preprocessor: {{artifact: preprocessor}}}}
registry: {{uri: "{registry}"}}
router: {{type: gateway, urls: {urls}, timeout: 3s}}
metrics: {{type: prometheus, url: "{prometheus}", preset: gray, selector: {{job: {job}}}}}
interval: 1s
gates:
  - {{metric: error_rate, max_increase: 50%, max_increase_abs: 5%, min_samples: 60}}
stages:
{stages}
policies:
  inconclusive: {{extend: 3s, max_extensions: 1, then: pass}}
promote: {{alias: {alias}}}
"""


@dataclass
class Answer:
    sent_at: float  # unix seconds, when the request left
    version: str  # the X-Model-Version that answered, or the HTTP status


@dataclass
class Users:
    """Users sending the demo's rows through the load balancer, each answer kept."""

    url: str
    rows: list[list[float]]
    columns: list[str]
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Users:
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._send, args=(seed,), daemon=True)
            for seed in range(SENDERS)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _send(self, seed: int) -> None:
        pick = random.Random(seed)
        with httpx.Client(base_url=self.url, timeout=30.0) as client:
            while not self._stop.is_set():
                row = pick.randrange(len(self.rows))
                body = {"dataframe_split": {"columns": self.columns, "data": [self.rows[row]]}}
                sent_at = time.time()
                try:
                    response = client.post(
                        "/invocations", json=body, headers={"X-User-Id": f"user-{row}"}
                    )
                except httpx.HTTPError:
                    continue
                version = response.headers.get("X-Model-Version", str(response.status_code))
                self.answers.append(Answer(sent_at, version))


@dataclass
class FleetStack:
    replicas: GatewayReplicas
    proxy: RunningHaproxy
    prometheus: RunningPrometheus
    registry: DemoRegistry
    root: Path
    users: Users

    @property
    def home(self) -> Path:
        return self.root / "gray-home"

    def plan(self, name: str, candidate: str, stages: str) -> Path:
        path = self.root / f"plan-{name}.yaml"
        path.write_text(
            PLAN.format(
                name=name,
                model=self.registry.model_name,
                alias=ALIAS,
                candidate=candidate,
                registry=self.registry.uri,
                urls=json.dumps(self.replicas.urls),
                prometheus=self.prometheus.url,
                job=JOB,
                stages=stages,
            )
        )
        return path

    def env(self, fast_rollback: bool = True) -> dict[str, str]:
        """The replicas run without a token; any token lets `gray rollback` write before
        its command line is built, none sends it through the full command."""
        env = {**os.environ, "GRAY_HOME": str(self.home), "GRAY_GATEWAY_TOKEN": "unused"}
        if not fast_rollback:
            del env["GRAY_GATEWAY_TOKEN"]
        return env

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "gray.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
        )

    def gray(self, *args: str, fast_rollback: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gray.cli", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env(fast_rollback),
        )

    def journal(self, rollout_id: str) -> list[dict]:
        lines = (self.home / "rollouts" / rollout_id / "events.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def answers_from_each_replica(self, users: int = 60) -> set[str]:
        """Which versions the replicas answer now, asked directly, many users each."""
        seen = set()
        with httpx.Client(timeout=30.0) as client:
            for url in self.replicas.urls:
                for user in range(users):
                    body = {
                        "dataframe_split": {
                            "columns": self.users.columns,
                            "data": [self.users.rows[0]],
                        }
                    }
                    response = client.post(
                        f"{url}/invocations", json=body, headers={"X-User-Id": f"user-{user}"}
                    )
                    seen.add(response.headers.get("X-Model-Version", str(response.status_code)))
        return seen


@pytest.fixture(scope="module")
def fleet_stack(
    gateway_fleet: GatewayReplicas,
    prometheus_server: RunningPrometheus,
    demo_registry: DemoRegistry,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FleetStack]:
    from gray.demo.models import demo_dataset

    root = tmp_path_factory.mktemp("scaling")
    # The replicas load versions from the session's demo registry; the rollouts pin, move
    # aliases and journal in a copy of it, so no other test sees their writes.
    assert demo_registry.root is not None
    copy = copy_sqlite_registry(demo_registry.root, root / "registry")
    demo_registry = replace(demo_registry, uri=f"sqlite:///{copy}/mlflow.db", root=copy)
    baseline = demo_registry.versions["baseline"]
    gateway_fleet.reset(baseline)
    registry = Registry(demo_registry.uri)
    registry.set_alias(
        demo_registry.model_name,
        ALIAS,
        baseline,
        expected_from=registry.aliases.target(demo_registry.model_name, ALIAS),
        rollout_id=None,
        reason="the baseline the scaling test rolls out against",
    )
    prometheus_server.set_targets({JOB: gateway_fleet.urls})
    features, _ = demo_dataset()
    with round_robin_haproxy(root / "haproxy", gateway_fleet.urls) as proxy:
        users = Users(proxy.url, features.to_numpy().tolist(), [str(c) for c in features.columns])
        stack = FleetStack(gateway_fleet, proxy, prometheus_server, demo_registry, root, users)
        users.start()
        try:
            yield stack
        finally:
            users.stop()
            gateway_fleet.alive()


def test_a_bad_candidate_is_rolled_back_on_every_replica_by_its_gate(
    fleet_stack: FleetStack,
) -> None:
    stack = fleet_stack
    bad = stack.registry.versions["bad_raises"]
    plan = stack.plan("bad", bad, "  - {weight: 50%, dwell: 20s}")
    result = stack.gray("rollout", "start", str(plan), "--output", "json")
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert events[-1]["phase"] == "rolled_back"
    rollout_id = events[-1]["rollout_id"]
    journal = stack.journal(rollout_id)
    kinds = [e["event"] for e in journal]
    assert "gate_failed" in kinds
    rolled_back_at = next(e["at"] for e in journal if e["event"] == "rolled_back")
    assert all(a.version != bad for a in stack.users.answers if a.sent_at > rolled_back_at)
    assert any(a.version == bad for a in stack.users.answers)  # it did get its share first
    assert bad not in stack.answers_from_each_replica()
    for applied in stack.replicas.routes():
        assert applied.route.weight == 0 and applied.route.mirror == 0


def test_a_good_candidate_is_promoted_through_a_kill_and_a_lost_state(
    fleet_stack: FleetStack,
) -> None:
    stack = fleet_stack
    good = stack.registry.versions["good"]
    stages = "  - {weight: 50%, dwell: 12s}"
    controller = stack.spawn(
        "rollout", "start", str(stack.plan("good", good, stages)), "--output", "json"
    )
    try:
        read_events(controller, "stage_started")
        stack.replicas.kill(1)  # mid-stage, no shutdown: a crashed node
        time.sleep(1.0)
        restarts = [
            # the crashed node on its state directory and port; a node replaced, state lost
            threading.Thread(target=stack.replicas.restart, args=(1,)),
            threading.Thread(target=stack.replicas.restart, args=(2,), kwargs={"empty": True}),
        ]
        for restart in restarts:
            restart.start()
        for restart in restarts:
            restart.join()
        out, err = controller.communicate(timeout=90)
    finally:
        if controller.poll() is None:
            controller.kill()
    assert controller.returncode == 0, out[-3000:] + err[-3000:]
    final = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    assert final["phase"] == "promoted", final
    journal = stack.journal(final["rollout_id"])
    repairs = [e for e in journal if e["event"] == "route_repaired"]
    assert [r["data"]["replica"] for r in repairs] == [stack.replicas.urls[2]]
    assert repairs[0]["data"]["found"]["lease"] is None
    for applied in stack.replicas.routes():
        assert applied.route.baseline == good and applied.route.weight == 0
    assert stack.answers_from_each_replica() == {good}


def test_gray_rollback_with_a_replica_down_writes_the_others_and_exits_4(
    fleet_stack: FleetStack,
) -> None:
    stack = fleet_stack
    current = stack.replicas.routes()[0].route.baseline  # the promoted one, after the test above
    versions = stack.registry.versions
    other = versions["good"] if current != versions["good"] else versions["baseline"]
    stages = "  - {weight: 50%, dwell: 120s}"
    controller = stack.spawn(
        "rollout", "start", str(stack.plan("held", other, stages)), "--output", "json"
    )
    try:
        events = read_events(controller, "stage_started")
        rollout_id = events[-1]["rollout_id"]
        stack.replicas.kill(2)
        partial = stack.gray("rollback", rollout_id, "--reason", "fleet drill")
        assert partial.returncode == 4, partial.stdout + partial.stderr
        assert f"{stack.replicas.urls[2]}: NOT WRITTEN" in partial.stdout + partial.stderr
        for url in stack.replicas.urls[:2]:
            with httpx.Client(timeout=10.0) as client:
                route = client.get(f"{url}/admin/route").json()["route"]
            assert route["weight"] == 0 and route["baseline"] == current
        # Back with the stage's route (the first rollback missed it), while the controller
        # finds its lease taken and stops.
        stack.replicas.restart(2)
        controller.communicate(timeout=60)
        complete = stack.gray(
            "rollback", rollout_id, "--reason", "fleet drill, all replicas", fast_rollback=False
        )
    finally:
        if controller.poll() is None:
            controller.kill()
    assert complete.returncode == 0, complete.stdout + complete.stderr
    assert complete.stdout.count("replica http://") == 3
    assert all(a.route.weight == 0 for a in stack.replicas.routes())
