"""Start a real gateway in a subprocess on a free loopback port, and stop it again.

Used by gray's own end-to-end tests and by `gray demo`:

    with start_gateway(uri, "fraud", tmp_path / "gw", token="secret") as gateway:
        httpx.post(f"{gateway.url}/invocations", json=...)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gray.controller.errors import GatewayError
from gray.gateway.settings import TOKEN_ENV

START_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 15.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningGateway:
    """A gateway process; `url` has no trailing slash."""

    url: str
    token: str | None
    process: subprocess.Popen[bytes]
    state_dir: Path
    log_path: Path
    args: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def headers(self) -> dict[str, str]:
        """Admin headers (empty when the gateway runs without a token)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def log_tail(self, characters: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-characters:]
        except OSError:
            return ""

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return int(self.process.returncode)

    def __enter__(self) -> RunningGateway:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def start_gateway(
    registry_uri: str,
    model: str,
    state_dir: Path,
    *,
    token: str | None = None,
    slo_edges: Iterable[float] = (),
    extra_args: Iterable[str] = (),
    port: int | None = None,
    wait_ready: bool = True,
    timeout: float = START_TIMEOUT_SECONDS,
    env: Mapping[str, str] | None = None,
) -> RunningGateway:
    """Run `python -m gray.gateway serve` on 127.0.0.1 and wait for `/ping` to answer 200.

    Without `token` the gateway runs with --insecure-no-auth. `slo_edges` are seconds.
    Raises GatewayError (with the gateway's log) when it exits or is not ready in time.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [sys.executable, "-m", "gray.gateway", "serve", "--model", model]
    args += ["--registry-uri", registry_uri, "--host", "127.0.0.1", "--port", str(port)]
    args += ["--state-dir", str(state_dir)]
    edges = [f"{edge * 1000:g}ms" for edge in slo_edges]
    if edges:
        args += ["--slo-edges", ",".join(edges)]
    if token is None:
        args.append("--insecure-no-auth")
    args += list(extra_args)
    environment = dict(os.environ if env is None else env)
    environment.pop(TOKEN_ENV, None)
    if token is not None:
        environment[TOKEN_ENV] = token
    log_path = state_dir / "gateway.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env=environment, start_new_session=True
        )
    gateway = RunningGateway(
        url=f"http://127.0.0.1:{port}",
        token=token,
        process=process,
        state_dir=state_dir,
        log_path=log_path,
        args=args,
    )
    if wait_ready:
        try:
            wait_for_ping(gateway, timeout)
        except BaseException:
            gateway.stop()
            raise
    return gateway


def wait_for_ping(gateway: RunningGateway, timeout: float = START_TIMEOUT_SECONDS) -> None:
    """Block until the gateway's routed versions are loaded and warm (`/ping` is 200).

    Raises GatewayError at once when the process exits or a routed version failed to load.
    """
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if gateway.process.poll() is not None:
                raise GatewayError(
                    f"the gateway exited with {gateway.process.returncode}:\n{gateway.log_tail()}"
                )
            try:
                response = client.get(f"{gateway.url}/ping")
            except httpx.HTTPError:
                response = None
            if response is not None and response.status_code == 200:
                return
            if response is not None and response.status_code == 503:
                failed = [
                    version
                    for version, state in (response.json().get("versions") or {}).items()
                    if state == "failed"
                ]
                if failed:
                    raise GatewayError(
                        f"the gateway at {gateway.url} could not load version(s) "
                        f"{', '.join(failed)}:\n{gateway.log_tail()}"
                    )
            time.sleep(0.1)
    raise GatewayError(
        f"the gateway at {gateway.url} was not ready in {timeout:g}s:\n{gateway.log_tail()}"
    )


@dataclass
class RunningMlflowServe:
    """A `mlflow models serve --env-manager local` process (own session: stop() ends it all)."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def wait_ready(self, timeout: float = START_TIMEOUT_SECONDS) -> RunningMlflowServe:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise GatewayError(
                        f"mlflow models serve exited with {self.process.returncode}:\n"
                        f"{self.log_path.read_text(errors='replace')[-4000:]}"
                    )
                try:
                    if client.get(f"{self.url}/ping").status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
        self.stop()
        raise GatewayError(f"mlflow models serve at {self.url} was not ready in {timeout:g}s")

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
        except ProcessLookupError:
            pass


def start_mlflow_serve(registry_uri: str, model_uri: str, log_path: Path) -> RunningMlflowServe:
    """Start MLflow's own scoring server for `model_uri` on a free loopback port (no wait:
    call `wait_ready`, so several can start side by side)."""
    port = free_port()
    environment = dict(os.environ)
    # `mlflow models serve` starts `uvicorn` by name: this interpreter's bin must be on PATH.
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}"
    environment["MLFLOW_TRACKING_URI"] = registry_uri
    environment["MLFLOW_REGISTRY_URI"] = registry_uri
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "models",
                "serve",
                "-m",
                model_uri,
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )
    return RunningMlflowServe(f"http://127.0.0.1:{port}", process, log_path)
