"""Secrets never reach a message, a log line or a journal entry.

A webhook URL built from `${…}` (its path is the secret), credentials in a
router's or a registry's URL, tokens in query strings and bearer headers: each
is written into a plan or an error the way a user meets it, and every output
is searched for the secret.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gray.cli.app import app
from gray.controller.errors import PlanError, RegistryError, RouterError
from gray.controller.journal import Journal, LocalJournal
from gray.controller.plan.loading import parse_plan
from gray.controller.redact import redact, redact_data, register_secret, webhook_label
from tests.fakes import rollout_state
from tests.loop.conftest import PLAN, Harness
from tests.reliability.test_journal_corruption import write_rollout

runner = CliRunner()
NO_REGISTRY = ["--registry-uri", "sqlite:////nonexistent/gray-tests/mlflow.db"]
SLACK_PATH = "T0SECRET/B0SECRET/xoxbSECRETpath"


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        ("cannot reach http://alice:pw-s3cret@10.0.0.5:8080/x", "pw-s3cret", "alice:***@10.0.0.5"),
        ("https://TOKENabc123@github.com/org/repo", "TOKENabc123", "https://***@github.com"),
        ("GET https://x/api?token=t0ps3cret&page=2", "t0ps3cret", "page=2"),
        ("https://x/?a=1&api_key=k3y&X-Amz-Signature=s1g", "k3y", "a=1"),
        ("https://x/?a=1&api_key=k3y&X-Amz-Signature=s1g", "s1g", "X-Amz-Signature=***"),
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi", "Bearer ***"),
        (f"posting to https://hooks.slack.com/services/{SLACK_PATH}", "SECRET", "hooks.slack.com"),
        ("mysql://root:hunter2@db:3306/mlflow", "hunter2", "root:***@db"),
    ],
)
def test_redact_masks_the_secret_and_keeps_the_rest(text: str, secret: str, kept: str) -> None:
    masked = redact(text)
    assert secret not in masked
    assert kept in masked


@pytest.mark.parametrize(
    "text",
    [
        "v2 answers 100 % (endpoint write 2 ms, lease epoch 4)",
        "registry sqlite:///mlflow.db and http://127.0.0.1:8080/admin/route",
        "error rate 2.56x baseline (2.23% vs 0.87%)",
        "stage 2/3 (50%): candidate answers 50% for 30m",
        "user@host rolled back: p99 doubled",
        "Basic auth failed: the Token was refused",
    ],
)
def test_redact_leaves_ordinary_text_alone(text: str) -> None:
    assert redact(text) == text


def test_redact_data_url_and_webhook_label() -> None:
    data = {"a": ["http://u:p4ss@h/x", {"b": "Bearer zzzzzzzz"}], "n": 3, "ok": None}
    assert redact_data(data) == {"a": ["http://u:***@h/x", {"b": "Bearer ***"}], "n": 3, "ok": None}
    assert redact("https://u:p@h:1/p?token=x&q=1") == "https://u:***@h:1/p?token=***&q=1"
    assert webhook_label(f"https://hooks.slack.com/services/{SLACK_PATH}") == (
        "https://hooks.slack.com/…"
    )
    register_secret("a-registered-token-value")
    assert redact("sent a-registered-token-value twice") == "sent *** twice"


def test_a_webhook_from_an_environment_variable_never_reaches_a_warning(tmp_path: Path) -> None:
    hook = f"http://127.0.0.1:9/services/{SLACK_PATH}?token=t0ps3cret"
    text = PLAN + '\nnotify: [{url: "${SLACK_WEBHOOK_URL}"}]\n'
    harness = Harness(tmp_path)
    harness.plan_text = text
    harness.plan = parse_plan(text, "plan.yaml", environ={"SLACK_WEBHOOK_URL": hook})
    warnings: list[str] = []
    controller = harness.runner(on_warning=warnings.append)
    controller.run(harness.start())
    failures = [w for w in warnings if "notification" in w]
    assert failures, warnings
    assert all("SECRET" not in w and "t0ps3cret" not in w for w in warnings)
    assert "127.0.0.1:9" in failures[0]


def test_plan_problems_show_the_variable_not_its_value() -> None:
    environ = {"HOOK": "ftp://bob:hunter2@x/y", "T": "sekrit-value"}
    for text, reference in (
        (PLAN + '\nnotify: [{url: "${HOOK}"}]\n', "${HOOK}"),
        (PLAN + '\nrouter: {timeout: "${T}"}\n', "${T}"),
    ):
        with pytest.raises(PlanError) as caught:
            parse_plan(text, "plan.yaml", environ=environ)
        rendered = caught.value.message + json.dumps(caught.value.to_dict())
        assert "hunter2" not in rendered and "sekrit-value" not in rendered
        assert reference in rendered


def test_errors_and_journal_entries_are_redacted(tmp_path: Path) -> None:
    error = RouterError("the gateway at http://admin:s3cret@10.1.1.1:80 could not read the route")
    assert "s3cret" not in str(error) and "s3cret" not in error.message
    assert "s3cret" not in json.dumps(error.to_dict())
    journal = Journal(LocalJournal(tmp_path))
    state = rollout_state("fraud-1", reason="endpoint http://admin:s3cret@h lost")
    journal.create(state, PLAN)
    journal.append(
        state, "endpoint_lost", "http://admin:s3cret@h lost", {"url": "http://a:s3cret@h"}
    )
    journal.post_command("fraud-1", "pause", "see https://x/?token=s3cret")
    folder = tmp_path / "rollouts" / "fraud-1"
    written = (folder / "events.jsonl").read_text() + (folder / "commands.jsonl").read_text()
    assert "s3cret" not in written and "admin:***@h" in written


@pytest.mark.slow
def test_router_credentials_stay_out_of_rollback_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("GRAY_HOME", str(home))
    monkeypatch.setenv("ROUTER_URL", "http://admin:rout3r-s3cret@127.0.0.1:9")
    router = 'router: {url: "${ROUTER_URL}", timeout: 100ms}'
    plan = PLAN.replace("interval: 1s", f"{router}\ninterval: 1s")
    write_rollout(home, "fraud-20260101-000000-cred", plan)
    result = runner.invoke(app, ["rollback", "fraud-20260101-000000-cred", *NO_REGISTRY])
    assert result.exit_code == 4, result.output
    assert "rout3r-s3cret" not in result.output + result.stderr
    assert "admin:***@127.0.0.1:9" in result.output + result.stderr


@pytest.mark.slow
def test_registry_credentials_stay_out_of_registry_errors() -> None:
    from gray.controller.registry import Registry

    with pytest.raises(RegistryError) as caught:
        Registry("http://alice:pw-s3cret@127.0.0.1:9", retries=0).versions("fraud")
    assert "pw-s3cret" not in str(caught.value) + json.dumps(caught.value.to_dict())
    assert "alice:***@127.0.0.1:9" in caught.value.message


def test_log_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from gray.controller.redact import install_log_redaction

    install_log_redaction()
    install_log_redaction()  # idempotent: one factory, not a chain
    with caplog.at_level(logging.INFO, logger="gray.test"):
        logging.getLogger("gray.test").warning("loading from %s", "http://u:l0g-s3cret@h/x")
    assert "l0g-s3cret" not in caplog.text and "u:***@h" in caplog.text


def test_controller_warnings_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    from gray.cli.rollout import _warn

    _warn("MLflow: journal event 3 failed, will retry: GET http://u:w4rn-s3cret@mlflow/api")
    printed = capsys.readouterr().err
    assert "w4rn-s3cret" not in printed and "u:***@mlflow" in printed
