"""A whole `gray rollout start` through a real HAProxy in front of two real model servers:
the preflight accepts an endpoint that cannot show which version or preprocessor its
servers run (saying so), the HAProxy router moves the weights stage by stage, HAProxy's
own counters feed the error gate, and the good candidate is promoted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from gray.controller.registry import Registry
from tests.conftest import DemoRegistry
from tests.haproxy_server import ModelsBehindHaproxy

pytestmark = pytest.mark.slow

ALIAS = "haproxy-champion"
PLAN = """\
name: haproxy-e2e
model: {{name: {model}, baseline: "@{alias}", candidate: "{candidate}", preprocessor: {{artifact: preprocessor}}}}
registry: {{uri: "{registry}"}}
router:
  type: haproxy
  runtime_api: "{runtime_api}"
  backend: {backend}
  servers: {servers}
  lease_map: "{lease_map}"
metrics: {{type: haproxy}}
interval: 1s
gates:
  - {{metric: error_rate, max_increase: 50%, max_increase_abs: 5%, min_samples: 40}}
stages:
  - {{weight: 50%, dwell: 5s}}
policies:
  inconclusive: {{extend: 3s, max_extensions: 1, then: pass}}
promote: {{alias: {alias}}}
"""


def test_a_rollout_through_haproxy_is_judged_on_its_counters_and_promoted(
    models_behind_haproxy: ModelsBehindHaproxy, fresh_registry: DemoRegistry, tmp_path: Path
) -> None:
    # The servers load versions from the session's demo registry; the rollout pins, moves
    # aliases and journals in a copy of it, so no other test sees its writes.
    demo_registry = fresh_registry
    models = models_behind_haproxy
    models.proxy.reset()
    baseline, candidate = models.versions["baseline"], models.versions["candidate"]
    registry = Registry(demo_registry.uri)
    before = registry.aliases.target(demo_registry.model_name, ALIAS)
    registry.set_alias(
        demo_registry.model_name,
        ALIAS,
        baseline,
        expected_from=before,
        rollout_id=None,
        reason="the baseline this test rolls out against",
    )
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        PLAN.format(
            model=demo_registry.model_name,
            alias=ALIAS,
            candidate=candidate,
            registry=demo_registry.uri,
            runtime_api=models.proxy.runtime_unix,
            backend=models.proxy.backend,
            servers=json.dumps(models.proxy.roles),
            lease_map=models.proxy.lease_map,
        )
    )
    answered: Counter[str] = Counter()
    stop = threading.Event()

    def traffic() -> None:
        number = 0
        while not stop.is_set():
            users = [f"user-{number + i}" for i in range(20)]
            answered.update(models.send(users).values())
            number += 20

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "gray.cli", "rollout", "start", str(plan), "--output", "json"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "GRAY_HOME": str(tmp_path / "home")},
        )
    finally:
        stop.set()
        sender.join(timeout=30)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    preflight = next(e for e in events if e.get("event") == "preflight")
    checks = {c["name"]: c for c in preflight["checks"]}
    assert "cannot show which version it serves" in checks["endpoint baseline"]["detail"]
    assert "cannot show which preprocessor" in checks["candidate loaded"]["detail"]
    assert events[-1]["phase"] == "promoted", events[-1]
    # Both servers answered users while the stage ran, and none of them failed.
    assert answered[baseline] > 0 and answered[candidate] > 0
    assert set(answered) == {baseline, candidate}
    assert registry.alias_points_at(demo_registry.model_name, ALIAS, candidate)
