"""`gray haproxy snippet` prints configuration HAProxy accepts as it is."""

from __future__ import annotations

import subprocess
from pathlib import Path

from typer.testing import CliRunner

from gray.cli.app import app
from tests.haproxy_server import HAPROXY

TIMEOUTS = "defaults\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n"


def test_the_printed_snippet_is_a_config_haproxy_accepts(tmp_path: Path) -> None:
    lease_map = tmp_path / "gray-leases.map"
    lease_map.touch()
    result = CliRunner().invoke(
        app,
        [
            "haproxy", "snippet", "--backend", "fraud",
            "--server", "v1=10.0.0.1:8080", "--server", "v2=10.0.0.2:8080", "--candidate", "v2",
            "--lease-map", str(lease_map), "--socket", str(tmp_path / "admin.sock"),
            "--routing-header", "X-User-Id",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "balance hdr(X-User-Id)" in result.output
    assert "server v2 10.0.0.2:8080 weight 0" in result.output
    config = tmp_path / "haproxy.cfg"
    config.write_text(TIMEOUTS + result.output)
    checked = subprocess.run([HAPROXY, "-c", "-f", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_servers_must_be_two_named_addresses_one_the_candidate() -> None:
    base = ["haproxy", "snippet", "--backend", "fraud", "--candidate", "v3"]
    result = CliRunner().invoke(app, [*base, "--server", "v1=10.0.0.1"])
    assert result.exit_code == 2
    assert "--server 'v1=10.0.0.1': expected NAME=HOST:PORT" in result.output
    result = CliRunner().invoke(app, [*base, "--server", "v1=a:1", "--server", "v2=b:1"])
    assert result.exit_code == 2
    assert "one of them the --candidate ('v3')" in result.output
