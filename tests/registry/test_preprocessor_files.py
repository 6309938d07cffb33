"""Preprocessor hashing, staging and loading, and the alias-history encoding (no MLflow)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import joblib
import pytest
from sklearn.preprocessing import StandardScaler

from gray.controller.errors import ConfigError, PreprocessorError
from gray.controller.registry import aliases as alias_history
from gray.controller.registry import preprocessors
from gray.controller.registry.aliases import AliasMove


def make_tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "b.txt").write_bytes(b"second\n")
    (root / "a.joblib").write_bytes(b"first")
    (root / "sub" / "c.bin").write_bytes(bytes(range(256)))
    return root


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="coreutils sha256sum is absent")
def test_tree_hash_is_what_the_documented_shell_pipeline_prints(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")
    shell = subprocess.run(
        "find . -type f | sed 's|^./||' | LC_ALL=C sort | xargs sha256sum | sha256sum",
        shell=True,
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    )
    assert preprocessors.tree_sha256(root) == shell.stdout.split()[0]


def test_tree_hash_changes_with_content_and_names(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")
    before = preprocessors.tree_sha256(root)
    (root / "b.txt").write_bytes(b"Second\n")
    changed = preprocessors.tree_sha256(root)
    (root / "b.txt").rename(root / "B.txt")
    renamed = preprocessors.tree_sha256(root)
    assert len({before, changed, renamed}) == 3


def test_staging_an_object_a_file_and_a_directory(tmp_path: Path) -> None:
    scaler = StandardScaler().fit([[0.0], [2.0]])
    preprocessors.stage_preprocessor(scaler, tmp_path / "object")
    assert [p.name for p in (tmp_path / "object").iterdir()] == ["preprocessor.joblib"]
    loaded = preprocessors.load_preprocessor(tmp_path / "object")
    assert loaded.transform([[2.0]])[0][0] == pytest.approx(1.0)

    joblib.dump(scaler, tmp_path / "scaler.pkl")
    preprocessors.stage_preprocessor(tmp_path / "scaler.pkl", tmp_path / "file")
    assert [p.name for p in (tmp_path / "file").iterdir()] == ["scaler.pkl"]

    tree = make_tree(tmp_path / "tree")
    preprocessors.stage_preprocessor(str(tree), tmp_path / "dir")
    assert preprocessors.tree_sha256(tmp_path / "dir") == preprocessors.tree_sha256(tree)


def test_staging_refuses_what_cannot_be_a_preprocessor(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"needs a \.transform"):
        preprocessors.stage_preprocessor(object(), tmp_path / "a")
    with pytest.raises(ConfigError, match="does not exist"):
        preprocessors.stage_preprocessor(tmp_path / "missing.pkl", tmp_path / "b")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no files"):
        preprocessors.stage_preprocessor(tmp_path / "empty", tmp_path / "c")


def test_loading_refuses_ambiguous_or_unusable_files(tmp_path: Path) -> None:
    two = tmp_path / "two"
    two.mkdir()
    joblib.dump(StandardScaler(), two / "a.joblib")
    joblib.dump(StandardScaler(), two / "b.pkl")
    with pytest.raises(PreprocessorError, match="must hold one"):
        preprocessors.load_preprocessor(two)
    no_transform = tmp_path / "plain"
    no_transform.mkdir()
    joblib.dump({"mean": 1.0}, no_transform / "p.joblib")
    with pytest.raises(PreprocessorError, match=r"has no \.transform"):
        preprocessors.load_preprocessor(no_transform)
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "p.pkl").write_bytes(b"not a pickle")
    with pytest.raises(PreprocessorError, match="cannot load preprocessor"):
        preprocessors.load_preprocessor(garbage)


def test_cache_keeps_one_directory_per_hash(tmp_path: Path) -> None:
    first = make_tree(tmp_path / "d1")
    second = make_tree(tmp_path / "d2")
    sha = preprocessors.tree_sha256(first)
    cached = preprocessors.store_in_cache(first, tmp_path / "cache", sha)
    again = preprocessors.store_in_cache(second, tmp_path / "cache", sha)
    assert cached == again == tmp_path / "cache" / sha
    assert not first.exists() and not second.exists()
    assert preprocessors.tree_sha256(cached) == sha


def test_alias_history_round_trips_in_order_and_skips_unreadable_entries() -> None:
    moves = [
        AliasMove("fraud", "champion", None, "1", "2026-01-01T00:00:00Z", "a@h", None, "first"),
        AliasMove("fraud", "champion", "1", "2", "2026-01-02T00:00:00Z", "b@h", "r-1", "x" * 5000),
    ]
    tags = {
        alias_history.tag_key(10): alias_history.encode(moves[1]),
        alias_history.tag_key(9): alias_history.encode(moves[0]),
        alias_history.tag_key(11): "{not json",
        "gray.alias_move.latest": json.dumps(moves[0].to_dict()),
        "owner": "fraud-team",
    }
    decoded = alias_history.decode_history(tags)
    assert [m.to_version for m in decoded] == ["1", "2"]
    assert len(decoded[1].reason) == alias_history.MAX_REASON_CHARS
    assert alias_history.next_sequence(tags) == 12
    assert alias_history.next_sequence({}) == 1
    assert alias_history.tag_key(1) == "gray.alias_move.000001"


def test_actor_comes_from_the_environment_or_user_at_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAY_ACTOR", "ci/deploy-job-42")
    assert alias_history.current_actor() == "ci/deploy-job-42"
    monkeypatch.delenv("GRAY_ACTOR")
    assert "@" in alias_history.current_actor()
