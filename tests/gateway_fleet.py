"""Several real gateway replicas of one model, for the fleet tests, and a round-robin
HAProxy in front of them (the load balancer a fleet runs behind).

    with gateway_replicas(registry_uri, "fraud", tmp_path, count=3) as replicas:
        replicas.kill(1)                   # SIGKILL, as a crashed node
        replicas.restart(1)                # same port, same state directory
        replicas.restart(1, empty=True)    # same port, a state directory never written

The replicas run without an admin token and with the demo's 50 ms latency edge.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gray.controller.routers.gateway import GatewayRouter
from gray.controller.types import Applied, Lease, RouteSpec
from gray.gateway.testing import RunningGateway, free_port, start_gateway, wait_for_ping
from tests.haproxy_server import RunningHaproxy

SLO_EDGES = (0.05,)
_fresh_dirs = itertools.count(1)


@dataclass
class GatewayReplicas:
    """Replicas of one model, each with its own port and state directory."""

    registry_uri: str
    model: str
    root: Path
    replicas: list[RunningGateway] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [replica.url for replica in self.replicas]

    def start(self, index: int, port: int | None = None, *, empty: bool = False) -> RunningGateway:
        state_dir = self.root / f"replica-{index}"
        if empty:
            state_dir = self.root / f"replica-{index}-fresh-{next(_fresh_dirs)}"
        return start_gateway(
            self.registry_uri,
            self.model,
            state_dir,
            slo_edges=SLO_EDGES,
            port=port,
            wait_ready=False,
        )

    def kill(self, index: int) -> None:
        """SIGKILL replica `index`: no shutdown, its in-memory counters are gone."""
        process = self.replicas[index].process
        process.kill()
        process.wait(timeout=10)

    def restart(self, index: int, *, empty: bool = False) -> RunningGateway:
        """Start replica `index` again on its port, from its state directory (the route it
        saved comes back) or, with `empty`, from one never written (it serves its baseline
        under no lease)."""
        old = self.replicas[index]
        old.stop()
        self.replicas[index] = self.start(index, old.port, empty=empty)
        wait_for_ping(self.replicas[index])
        return self.replicas[index]

    def alive(self) -> None:
        """Every replica up again (after a test that killed or stopped one)."""
        for index, replica in enumerate(self.replicas):
            if replica.process.poll() is not None:
                self.restart(index)

    def routes(self) -> list[Applied]:
        """What each replica holds now, read from each directly."""
        answers = []
        for url in self.urls:
            with GatewayRouter(url, None, retries=0) as router:
                answers.append(router.read())
        return answers

    def next_lease(self, rollout_id: str) -> Lease:
        """A lease above every epoch any replica has seen, for a test's writes."""
        epochs = [a.lease.epoch for a in self.routes() if a.lease is not None]
        return Lease(rollout_id, max(epochs, default=0) + 1)

    def reset(self, baseline: str) -> None:
        """Every replica alive and on `baseline` alone, under a fresh lease."""
        self.alive()
        lease = self.next_lease("fleet-reset")
        for url in self.urls:
            with GatewayRouter(url, None) as router:
                router.apply(RouteSpec(baseline=baseline), lease)

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()


@contextmanager
def gateway_replicas(
    registry_uri: str, model: str, root: Path, count: int = 3
) -> Iterator[GatewayReplicas]:
    """`count` replicas started side by side (one start's wait is the others'); stopped after."""
    replicas = GatewayReplicas(registry_uri, model, root)
    try:
        replicas.replicas = [replicas.start(index) for index in range(count)]
        for replica in replicas.replicas:
            wait_for_ping(replica)
        yield replicas
    finally:
        replicas.stop()


def round_robin_haproxy(directory: Path, urls: list[str]) -> RunningHaproxy:
    """HAProxy spreading requests over `urls` in turn, the way a fleet's load balancer does
    (no stickiness of its own: the replicas' bucket hashing keeps a user's version)."""
    directory.mkdir(parents=True, exist_ok=True)
    port, runtime_port, exporter_port = free_port(), free_port(), free_port()
    servers = [
        f"    server replica-{index} {url.removeprefix('http://')} check inter 500ms fall 1 rise 1"
        for index, url in enumerate(urls)
    ]
    config = "\n".join(
        [
            "global",
            f"    stats socket {directory / 'admin.sock'} mode 600 level admin",
            "defaults",
            "    mode http",
            "    timeout connect 250ms",
            "    timeout client 30s",
            "    timeout server 30s",
            "    retries 3",
            "    option redispatch",
            "frontend fleet_in",
            f"    bind 127.0.0.1:{port}",
            "    default_backend fleet",
            "backend fleet",
            "    balance roundrobin",
            "    option httpchk GET /ping",
            *servers,
            "",
        ]
    )
    config_path = directory / "haproxy.cfg"
    config_path.write_text(config)
    proxy = RunningHaproxy(
        directory, config_path, port, runtime_port, exporter_port, "fleet", "", {}
    )
    return proxy.start()


def answered_by(url: str, user: str, body: dict[str, object]) -> str:
    """The version that answered one request of `user` at `url` (or its HTTP status)."""
    response = httpx.post(
        f"{url}/invocations", json=body, headers={"X-User-Id": user}, timeout=10.0
    )
    if response.status_code == 200:
        return response.headers["X-Model-Version"]
    return str(response.status_code)
