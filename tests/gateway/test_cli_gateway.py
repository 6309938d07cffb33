"""`gray gateway serve` refuses unsafe or broken settings before it listens; `samples` reads."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gray.controller.errors import ConfigError
from gray.gateway.cli import gateway_app
from gray.gateway.settings import GatewaySettings, parse_slo_edges

runner = CliRunner()


def serve(*args: str, token: str | None = None) -> tuple[int, str]:
    env = {"GRAY_GATEWAY_TOKEN": token} if token is not None else {}
    result = runner.invoke(
        gateway_app,
        ["serve", "--model", "fraud", "--registry-uri", "sqlite:///x.db", *args],
        env=env,
    )
    return result.exit_code, result.output


@pytest.fixture(autouse=True)
def _no_token_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRAY_GATEWAY_TOKEN", raising=False)


def test_without_a_token_the_gateway_refuses_to_start() -> None:
    code, output = serve()
    assert code == 2
    assert "GRAY_GATEWAY_TOKEN" in output and "--insecure-no-auth" in output


def test_insecure_mode_is_for_loopback_only() -> None:
    code, output = serve("--insecure-no-auth", "--host", "0.0.0.0")
    assert code == 2
    assert "only allowed on a loopback address" in output


def test_an_empty_token_is_refused() -> None:
    code, output = serve(token="  ")
    assert code == 2 and "empty" in output


def test_bad_slo_edges_and_networks_are_refused() -> None:
    assert serve("--slo-edges", "250", token="t")[0] == 2
    code, output = serve("--override-cidr", "10.0.0.0/33", token="t")
    assert code == 2 and "not a network" in output


def test_a_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, output = serve("--port", str(port), "--state-dir", str(tmp_path), token="t")
    assert code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in output


def test_two_gateways_cannot_share_a_state_directory(tmp_path: Path) -> None:
    from gray.gateway.server import lock_state_dir

    held = lock_state_dir(tmp_path)
    try:
        code, output = serve("--state-dir", str(tmp_path), token="t")
    finally:
        held.close()
    assert code == 2
    assert "another gateway is using the state directory" in output
    lock_state_dir(tmp_path).close()  # free again once the holder is gone


def test_settings_checks() -> None:
    assert parse_slo_edges("250ms, 100ms,1s,100ms") == (0.1, 0.25, 1.0)
    assert parse_slo_edges(None) == ()
    GatewaySettings(model_name="m", state_dir=Path("."), insecure_no_auth=True, host="::1").check()
    GatewaySettings(model_name="m", state_dir=Path("."), insecure_no_auth=True).check()
    with pytest.raises(ConfigError, match="--predict-threads"):
        GatewaySettings(model_name="m", state_dir=Path("."), token="t", predict_threads=0).check()
    with pytest.raises(ConfigError, match="--port"):
        GatewaySettings(model_name="m", state_dir=Path("."), token="t", port=70000).check()


def test_samples_prints_the_newest_lines(tmp_path: Path) -> None:
    directory = tmp_path / "predictions"
    directory.mkdir()
    lines = [
        {"kind": "prediction", "request_id": "a", "version": "1"},
        {"kind": "shadow", "request_id": "b", "agree": False, "candidate": {"version": "2"}},
        {"kind": "shadow", "request_id": "c", "agree": True, "candidate": {"version": "2"}},
    ]
    (directory / "predictions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    result = runner.invoke(
        gateway_app, ["samples", "--state-dir", str(tmp_path), "--disagreements"]
    )
    assert result.exit_code == 0, result.output
    assert [json.loads(x)["request_id"] for x in result.output.splitlines()] == ["b"]
    result = runner.invoke(gateway_app, ["samples", "--state-dir", str(tmp_path), "-n", "2"])
    assert [json.loads(x)["request_id"] for x in result.output.splitlines()] == ["b", "c"]
    missing = runner.invoke(gateway_app, ["samples", "--state-dir", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "no prediction log" in missing.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--max-body", "12XB"), "--max-body: expected a size such as 16MB"),
        (("--max-body", "10"), "--max-body must be at least 1KB"),
        (("--max-connections", "2"), "--max-connections must be at least 8"),
        (("--header-timeout", "10"), "--header-timeout: expected a duration"),
        (("--idle-timeout", "2h"), "--idle-timeout must be between 1ms and 1h"),
    ],
)
def test_bad_limits_are_refused_before_listening(args: tuple[str, ...], message: str) -> None:
    code, output = serve(*args, token="t")
    assert code == 2 and message in output, output


def test_a_token_file_and_scoped_tokens_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "admin-token"
    secret.write_text("from-file\n")
    monkeypatch.setenv("GRAY_GATEWAY_TOKEN_FILE", str(secret))
    monkeypatch.setenv("GRAY_GATEWAY_STATS_TOKEN", "from-file")
    code, output = serve()  # the stats token equals the admin token read from the file
    assert code == 2 and "must differ" in output
    monkeypatch.setenv("GRAY_GATEWAY_TOKEN", "both")
    code, output = serve()
    assert code == 2 and "not both" in output
