"""`gray registry show|history|bind` through typer's CliRunner on real registries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gray.cli.registry import registry_app
from gray.controller.plan.models import PromoteSpec
from gray.controller.registry.preprocessors import tree_sha256
from gray.demo.models import ROLE_ALIASES, ROLES, demo_dataset

from .helpers import copy_version

runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(registry_app, list(args))


def test_show_json_lists_versions_aliases_preprocessors_and_last_rollout(store: Any) -> None:
    store.registry().promote(store.model_name, store.versions["good"], PromoteSpec(), "r-7")

    result = invoke("show", store.model_name, "--registry-uri", store.uri, "--output", "json")

    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["ok"] and payload["registry_uri"] == store.uri
    by_version = {row["version"]: row for row in payload["versions"]}
    good = by_version[store.versions["good"]]
    assert good["aliases"] == ["challenger", "champion"]
    assert good["status"] == "READY"
    assert good["preprocessor_binding"] == "artifact:preprocessor"
    assert len(good["preprocessor_sha256"]) == 64
    assert good["last_rollout"]["rollout_id"] == "r-7"
    assert good["last_rollout"]["event"] == "promoted"
    assert by_version[store.versions["baseline"]]["last_rollout"]["event"] == "replaced"


def test_show_text_is_a_table_of_every_version(demo_registry: Any) -> None:
    result = invoke("show", demo_registry.model_name, "--registry-uri", demo_registry.uri)
    assert result.exit_code == 0, result.output
    for role in ROLES:
        assert f"@{ROLE_ALIASES[role]}" in result.stdout
    sha = demo_registry.registry().resolve(demo_registry.model_name, "@champion")
    assert sha.preprocessor_sha256[:12] in result.stdout
    assert result.stdout.count("READY") == len(ROLES)


def test_history_shows_moves_in_order(store: Any) -> None:
    registry = store.registry()
    registry.promote(store.model_name, store.versions["good"], PromoteSpec(), "r-8")
    registry.restore_previous(
        store.model_name, PromoteSpec(), rollout_id="r-8", reason="error rate doubled"
    )

    as_json = invoke("history", store.model_name, "--registry-uri", store.uri, "-o", "json")
    as_text = invoke("history", store.model_name, "--registry-uri", store.uri)

    assert as_json.exit_code == 0, as_json.output
    moves = json.loads(as_json.stdout)["moves"]
    assert [(m["alias"], m["to_version"]) for m in moves] == [
        ("previous-champion", store.versions["baseline"]),
        ("champion", store.versions["good"]),
        ("champion", store.versions["baseline"]),
    ]
    assert moves[-1]["reason"] == "error rate doubled"
    assert as_text.exit_code == 0
    assert "error rate doubled" in as_text.stdout and "@previous-champion" in as_text.stdout
    # An alias that pointed nowhere before its first move reads as such, not as `-`.
    assert f"(none) -> v{store.versions['baseline']}" in as_text.stdout


def test_history_of_an_untouched_model_says_so(demo_registry: Any) -> None:
    result = invoke("history", demo_registry.model_name, "--registry-uri", demo_registry.uri)
    assert result.exit_code == 0
    assert "has not moved any alias" in result.stdout


def test_bind_a_preprocessor_file(store: Any, tmp_path: Path) -> None:
    import joblib
    from sklearn.preprocessing import StandardScaler

    features, _ = demo_dataset()
    folder = tmp_path / "prep"
    folder.mkdir()
    joblib.dump(StandardScaler().fit(features), folder / "scaler.joblib")
    version = copy_version(store.uri, store.model_name, store.versions["good"])

    result = invoke(
        "bind",
        store.model_name,
        version,
        str(folder / "scaler.joblib"),
        "--artifact-path",
        "scaler",
        "--registry-uri",
        store.uri,
    )

    assert result.exit_code == 0, result.output
    expected = tree_sha256(folder)
    assert f"sha256 {expected}" in result.stdout
    info = store.registry().resolve(store.model_name, version)
    assert (info.preprocessor_binding, info.preprocessor_sha256) == ("artifact:scaler", expected)


def test_bind_none_declares_a_version_without_a_separate_preprocessor(store: Any) -> None:
    version = copy_version(store.uri, store.model_name, store.versions["good"])
    result = invoke("bind", store.model_name, version, "--none", "--registry-uri", store.uri)
    assert result.exit_code == 0, result.output
    assert "declared to need no separate preprocessor" in result.stdout
    info = store.registry().resolve(store.model_name, version)
    assert (info.preprocessor_binding, info.preprocessor_sha256) == ("none", "none")


@pytest.mark.parametrize(
    ("args", "exit_code", "fragment"),
    [
        (("show", "no-such-model"), 2, "no registered model 'no-such-model'"),
        (("history", "no-such-model"), 2, "no registered model 'no-such-model'"),
        (("bind", "fraud", "1"), 2, "exactly one"),
        (("bind", "fraud", "1", "/no/such/file.pkl"), 2, "does not exist"),
        (("bind", "fraud", "1", "--preprocessor-version", "3"), 2, "exactly one"),
        (("bind", "fraud", "1", "--none", "--registered-model", "p"), 2, "exactly one"),
    ],
)
def test_errors_are_one_line_with_the_error_exit_code(
    demo_registry: Any, args: tuple[str, ...], exit_code: int, fragment: str
) -> None:
    result = invoke(*args, "--registry-uri", demo_registry.uri)
    assert result.exit_code == exit_code
    assert fragment in result.stderr
    assert result.stderr.strip().startswith("error:")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_rebinding_a_bound_version_is_refused(demo_registry: Any, tmp_path: Path) -> None:
    import joblib
    from sklearn.preprocessing import StandardScaler

    path = tmp_path / "scaler.joblib"
    joblib.dump(StandardScaler(), path)
    result = invoke(
        "bind", demo_registry.model_name, demo_registry.versions["good"], str(path),
        "--registry-uri", demo_registry.uri,
    )  # fmt: skip
    assert result.exit_code == 2
    assert "already bound" in result.stderr


def test_unreachable_registry_exits_4_without_traceback(unused_port: int) -> None:
    uri = f"http://127.0.0.1:{unused_port}"
    result = invoke("show", "fraud", "--registry-uri", uri, "--output", "json")
    assert result.exit_code == 4
    payload = json.loads(result.stdout)
    assert payload["error"] == "RegistryError" and uri in payload["message"]
    assert "Traceback" not in result.output


def test_registry_uri_falls_back_to_mlflow_tracking_uri(
    demo_registry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", demo_registry.uri)
    result = invoke("show", demo_registry.model_name, "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["registry_uri"] == demo_registry.uri


@pytest.mark.parametrize("command", ["show", "history", "bind"])
def test_every_command_has_help_with_examples(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.stdout
    assert f"gray registry {command} fraud" in result.stdout
