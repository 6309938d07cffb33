"""A real Prometheus for tests: Debian's `prometheus` on a free loopback port.

    with start_prometheus(tmp_path / "prom") as prometheus:
        prometheus.set_targets({"gray-gateway": [gateway.url]})
        prometheus.wait_scraped()
        httpx.get(f"{prometheus.url}/api/v1/query", params={"query": "up"})

It scrapes every `scrape_interval` seconds (1 s by default), keeps its data in its own
directory, and reloads its targets without a restart (`/-/reload`, lifecycle API on).
The `prometheus_server` fixture (tests/conftest.py) is one such server per test session;
tests point it at their own targets with `set_targets`, which waits until Prometheus
uses them.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from gray.gateway.testing import free_port

PROMETHEUS_BINARY = "/usr/bin/prometheus"
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0


@dataclass
class RunningPrometheus:
    """A Prometheus process; `url` has no trailing slash."""

    url: str
    process: subprocess.Popen[bytes]
    root: Path
    scrape_interval: float
    targets: dict[str, list[str]] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        return self.root / "prometheus.yml"

    @property
    def log_path(self) -> Path:
        return self.root / "prometheus.log"

    def log_tail(self, characters: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-characters:]
        except OSError:
            return ""

    def write_config(self, targets: Mapping[str, Sequence[str]]) -> None:
        """One scrape job per name, of `host:port` or `http://host:port` targets."""
        self.targets = _write_config(self.config_path, targets, self.scrape_interval)

    def set_targets(self, targets: Mapping[str, Sequence[str]], timeout: float = 15.0) -> None:
        """Scrape exactly `targets` from now on; returns once Prometheus lists them."""
        self.write_config(targets)
        response = httpx.post(f"{self.url}/-/reload", timeout=10.0)
        assert response.status_code == 200, f"reload refused: {response.text}\n{self.log_tail()}"
        wanted = {(job, host) for job, hosts in self.targets.items() for host in hosts}
        self._wait(lambda: self._active_targets() == wanted, timeout, f"targets {wanted}")

    def wait_scraped(self, after: float | None = None, timeout: float = 15.0) -> None:
        """Block until every target has been scraped (successfully or not) after `after`
        (default: now), so its counters as of `after` are in Prometheus."""
        since = time.time() if after is None else after

        def scraped() -> bool:
            targets = self.api("/api/v1/targets")["activeTargets"]
            return bool(targets) and all(_last_scrape(t) > since for t in targets)

        self._wait(scraped, timeout, f"a scrape of every target after {since:.3f}")

    def api(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=10.0)
        response.raise_for_status()
        return response.json()["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result (for tests that check what Prometheus itself says)."""
        return list(self.api("/api/v1/query", query=promql)["result"])

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return int(self.process.returncode)

    def __enter__(self) -> RunningPrometheus:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _active_targets(self) -> set[tuple[str, str]]:
        targets = self.api("/api/v1/targets")["activeTargets"]
        return {(t["labels"]["job"], t["labels"]["instance"]) for t in targets}

    def _wait(self, condition: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log_tail()}")
            if condition():
                return
            time.sleep(0.1)
        raise AssertionError(f"prometheus: no {what} in {timeout:g}s\n{self.log_tail()}")


def start_prometheus(
    root: Path,
    targets: Mapping[str, Sequence[str]] | None = None,
    *,
    scrape_interval: float = 1.0,
    port: int | None = None,
) -> RunningPrometheus:
    """Start Prometheus on 127.0.0.1 with its config and storage under `root`; returns
    once it answers /-/ready."""
    binary = shutil.which("prometheus") or PROMETHEUS_BINARY
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    config_path = root / "prometheus.yml"
    written = _write_config(config_path, targets or {}, scrape_interval)
    with open(root / "prometheus.log", "ab") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=1d",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = RunningPrometheus(f"http://127.0.0.1:{port}", process, root, scrape_interval, written)
    try:
        server._wait(lambda: _ready(server.url), START_TIMEOUT_SECONDS, "/-/ready")
    except BaseException:
        server.stop()
        raise
    return server


def _write_config(
    path: Path, targets: Mapping[str, Sequence[str]], scrape_interval: float
) -> dict[str, list[str]]:
    """Write a config scraping `targets` (job -> hosts); returns them as host:port."""
    jobs = {job: [_host_port(target) for target in hosts] for job, hosts in targets.items()}
    interval = f"{int(scrape_interval * 1000)}ms"
    config = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval},
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": hosts}]} for job, hosts in jobs.items()
        ],
    }
    path.write_text(yaml.safe_dump(config))
    return jobs


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _host_port(target: str) -> str:
    return target.split("://", 1)[-1].rstrip("/")


def _last_scrape(target: dict[str, Any]) -> float:
    """A target's last scrape as unix seconds (Prometheus gives RFC 3339 with nanoseconds)."""
    from datetime import datetime

    stamp = str(target.get("lastScrape") or "")
    if not stamp or stamp.startswith("0001-"):
        return 0.0
    stamp = stamp.replace("Z", "+00:00")
    head, _, rest = stamp.partition(".")
    if rest:  # keep microseconds: Python parses six digits at most
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits) :]
        stamp = f"{head}.{digits[:6]}{zone}"
    return datetime.fromisoformat(stamp).timestamp()
