"""A real HAProxy (Debian's /usr/sbin/haproxy) on free loopback ports, for tests.

The config is gray's own snippet (`config_snippet`, the text `gray haproxy snippet`
prints) plus a frontend and timeouts, so every test that drives this HAProxy also
checks that the snippet works. The runtime API listens on a unix socket in the
test's directory and on a loopback TCP port:

    with start_haproxy(tmp_path, {"v1": "127.0.0.1:8001", "v2": ...}, candidate="v2") as proxy:
        httpx.get(f"{proxy.url}/ping")
        HaproxyRouter(proxy.runtime_unix, proxy.backend, proxy.roles, ...)

HAProxy's built-in Prometheus exporter answers on `exporter_url` (`/metrics`).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gray.controller.routers.haproxy_config import config_snippet
from gray.controller.routers.haproxy_runtime import RuntimeAddress, RuntimeApi
from gray.gateway.testing import RunningGateway, free_port, start_gateway, wait_for_ping

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
BACKEND = "models"
START_TIMEOUT_SECONDS = 10.0
SENDERS = 4  # requests in flight at once through HAProxy


@dataclass
class RunningHaproxy:
    """One HAProxy process and where it listens; `restart()` starts it again on the same
    config and ports (counters and runtime changes are lost, as on a real restart)."""

    directory: Path
    config_path: Path
    port: int
    runtime_port: int
    exporter_port: int
    backend: str
    lease_map: str
    roles: dict[str, str]  # the baseline's and the candidate's server names
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def exporter_url(self) -> str:
        return f"http://127.0.0.1:{self.exporter_port}/metrics"

    @property
    def socket_path(self) -> Path:
        return self.directory / "admin.sock"

    @property
    def runtime_unix(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def runtime_tcp(self) -> str:
        return f"tcp://127.0.0.1:{self.runtime_port}"

    def log_tail(self, characters: int = 4000) -> str:
        return (self.directory / "haproxy.log").read_text(errors="replace")[-characters:]

    def start(self) -> RunningHaproxy:
        with open(self.directory / "haproxy.log", "ab") as log:
            self.process = subprocess.Popen(
                [HAPROXY, "-db", "-f", str(self.config_path)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited {self.process.returncode}:\n{self.log_tail()}")
            if _answers(self.socket_path) and _accepts(self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"haproxy did not start in {START_TIMEOUT_SECONDS}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def api(self) -> RuntimeApi:
        return RuntimeApi(RuntimeAddress.parse(self.runtime_unix))

    def reset(self) -> None:
        """Forget gray's record and put the config's weights and states back, so tests can
        share one process."""
        api = self.api()
        api.expect_empty(f"clear map {self.lease_map}")
        for server, weight in ((self.roles["baseline"], 256), (self.roles["candidate"], 0)):
            api.set_weight(self.backend, server, weight)
            api.expect_empty(f"set server {self.backend}/{server} state ready")

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> RunningHaproxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def start_haproxy(
    directory: Path,
    servers: Mapping[str, str],
    *,
    candidate: str = "candidate",
    routing_header: str = "X-Routing-Key",
) -> RunningHaproxy:
    """HAProxy with gray's snippet for two `servers` (name → host:port), `candidate` one
    of them, behind one frontend."""
    directory.mkdir(parents=True, exist_ok=True)
    lease_map = directory / "gray-leases.map"
    lease_map.touch()
    port, runtime_port, exporter_port = free_port(), free_port(), free_port()
    snippet = config_snippet(
        BACKEND,
        servers,
        routing_header=routing_header,
        lease_map=str(lease_map),
        runtime_socket=str(directory / "admin.sock"),
        candidate=candidate,
    )
    config = "\n".join(
        [
            "defaults",
            "    mode http",
            "    timeout connect 250ms",  # a refused connection is retried 3 times, this apart
            "    timeout client 30s",
            "    timeout server 30s",
            "",
            snippet,
            "global",
            f"    stats socket ipv4@127.0.0.1:{runtime_port} level admin",
            "",
            "frontend models_in",
            f"    bind 127.0.0.1:{port}",
            f"    default_backend {BACKEND}",
            "",
            "frontend exporter",
            f"    bind 127.0.0.1:{exporter_port}",
            "    http-request use-service prometheus-exporter if { path /metrics }",
            "",
        ]
    )
    config_path = directory / "haproxy.cfg"
    config_path.write_text(config)
    baseline = next(name for name in servers if name != candidate)
    roles = {"baseline": baseline, "candidate": candidate}
    proxy = RunningHaproxy(
        directory, config_path, port, runtime_port, exporter_port, BACKEND, str(lease_map), roles
    )
    return proxy.start()


def _answers(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            probe.connect(str(path))
            probe.sendall(b"show info\n")
            return bool(probe.recv(64))
    except OSError:
        return False


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


@dataclass
class ModelsBehindHaproxy:
    """Two real model servers (gray gateways serving one version each) behind HAProxy:
    each server is named after its version (`fraud-v1`), as a Prometheus query of HAProxy's
    exporter needs it; `proxy.roles` says which is which."""

    proxy: RunningHaproxy
    versions: dict[str, str]
    gateways: dict[str, RunningGateway]
    body: dict[str, object] = field(default_factory=dict)

    def send(self, users: Iterable[str], body: dict[str, object] | None = None) -> dict[str, str]:
        """Each user's request through HAProxy; the version that answered it, by user
        (or the HTTP status, as text, when the answer is not 200). A few at a time: the
        two servers answer side by side."""
        with (
            httpx.Client(base_url=self.proxy.url, timeout=30.0) as client,
            ThreadPoolExecutor(SENDERS) as pool,
        ):

            def one(user: str) -> tuple[str, str]:
                response = client.post(
                    "/invocations", json=body or self.body, headers={"X-Routing-Key": user}
                )
                if response.status_code == 200:
                    return user, response.headers["X-Model-Version"]
                return user, str(response.status_code)

            return dict(pool.map(one, users))


@contextmanager
def models_behind_haproxy(
    registry_uri: str, model: str, versions: Mapping[str, str], directory: Path
) -> Iterator[ModelsBehindHaproxy]:
    """Start both gateways side by side, then HAProxy in front of them; stop all after."""
    from gray.demo.models import demo_dataset

    gateways = {
        role: start_gateway(
            registry_uri,
            model,
            directory / f"{role}-gateway",
            extra_args=["--baseline", version],
            wait_ready=False,
        )
        for role, version in versions.items()
    }
    try:
        for gateway in gateways.values():
            wait_for_ping(gateway)
        servers = {
            server_name(model, versions[role]): f"127.0.0.1:{gateway.port}"
            for role, gateway in gateways.items()
        }
        features, _ = demo_dataset()
        row = features.head(1).to_dict(orient="split")
        body = {"dataframe_split": {"columns": row["columns"], "data": row["data"]}}
        candidate = server_name(model, versions["candidate"])
        with start_haproxy(directory / "haproxy", servers, candidate=candidate) as proxy:
            yield ModelsBehindHaproxy(proxy, dict(versions), gateways, body)
    finally:
        for gateway in gateways.values():
            gateway.stop()


def server_name(model: str, version: str) -> str:
    """An HAProxy server's name for the server of one model version."""
    return f"{model}-v{version}"
