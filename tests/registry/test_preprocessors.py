"""Preprocessors: hashing, staging, loading and the cache (no MLflow), then verification of
a version's preprocessor against its tag in real MLflow stores."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import joblib
import pytest
from sklearn.preprocessing import StandardScaler

from gray.controller.errors import ConfigError, PreprocessorError
from gray.controller.plan.models import PreprocessorBinding
from gray.controller.registry import (
    TAG_PREPROCESSOR_BINDING,
    TAG_PREPROCESSOR_SHA256,
    RegistryClient,
    bind_registered_preprocessor,
    preprocessors,
)
from gray.controller.registry.preprocessors import PreprocessorVerifier, binding_label
from gray.controller.registry.versions import Versions
from gray.demo.models import demo_dataset
from gray.gateway.registry_loader import RegistryLoader

from .helpers import (
    artifact_repository,
    client,
    copy_version,
    register_preprocessor_model,
    replace_artifact_file,
)

ARTIFACT = PreprocessorBinding(artifact="preprocessor")


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


def test_preprocessor_is_fetched_verified_and_cached_by_hash(store: Any, tmp_path: Path) -> None:
    registry = store.registry(cache_dir=tmp_path / "cache")
    info = registry.resolve(store.model_name, "@challenger")

    verified = registry.verify_preprocessor(info, ARTIFACT, "@challenger")

    assert verified is not None
    assert verified.sha256 == info.preprocessor_sha256
    assert verified.path == tmp_path / "cache" / "preprocessors" / verified.sha256
    assert preprocessors.tree_sha256(verified.path) == verified.sha256
    assert verified.binding == "artifact:preprocessor"
    features, _ = demo_dataset()
    assert verified.load().transform(features.head(3)).shape == (3, 30)
    # Without a plan binding the version's own tag says where its preprocessor is.
    assert registry.verify_preprocessor(info, None) == verified
    assert list((tmp_path / "cache" / "downloads").iterdir()) == []


def test_missing_hash_tag_stops_the_rollout(store: Any) -> None:
    version = store.versions["good"]
    client(store.uri).delete_model_version_tag(store.model_name, version, TAG_PREPROCESSOR_SHA256)
    registry = store.registry()
    info = registry.resolve(store.model_name, version)
    with pytest.raises(PreprocessorError, match=f"version {version} has no gray.preprocessor"):
        registry.verify_preprocessor(info, ARTIFACT, "@challenger")

    client(store.uri).delete_model_version_tag(store.model_name, version, TAG_PREPROCESSOR_BINDING)
    unbound = registry.resolve(store.model_name, version)
    assert registry.verify_preprocessor(unbound, None) is None


def test_missing_preprocessor_file_stops_the_rollout(store: Any) -> None:
    version = store.versions["good"]
    artifact_repository(store.uri, store.model_name, version).delete_artifacts("preprocessor")
    registry = store.registry()
    info = registry.resolve(store.model_name, version)
    with pytest.raises(PreprocessorError) as caught:
        registry.verify_preprocessor(info, ARTIFACT)
    message = caught.value.message
    assert f"version {version}" in message and "is missing" in message
    assert f"expected sha256 {info.preprocessor_sha256}" in message


def test_changed_preprocessor_file_is_a_hash_mismatch(store: Any, tmp_path: Path) -> None:
    from sklearn.preprocessing import RobustScaler

    version = store.versions["good"]
    features, _ = demo_dataset()
    replace_artifact_file(
        store.uri, store.model_name, version, "preprocessor", RobustScaler().fit(features)
    )
    local = artifact_repository(store.uri, store.model_name, version).download_artifacts(
        "preprocessor", str(tmp_path)
    )
    found = preprocessors.tree_sha256(Path(local))
    registry = store.registry()
    info = registry.resolve(store.model_name, version)

    with pytest.raises(PreprocessorError) as caught:
        registry.verify_preprocessor(info, ARTIFACT, "@challenger")
    message = caught.value.message
    assert f"version {version}" in message
    assert f"expected sha256 {info.preprocessor_sha256}, found {found}" in message
    # The serving side refuses the same version before it can take traffic.
    with pytest.raises(PreprocessorError, match="hash mismatch"):
        RegistryLoader(store.uri, store.model_name).load(version)


def test_plan_binding_that_disagrees_with_the_version_is_refused(store: Any) -> None:
    registry = store.registry()
    info = registry.resolve(store.model_name, "@challenger")
    other = PreprocessorBinding(registered_model="fraud-preprocessor")
    with pytest.raises(PreprocessorError, match="was bound as artifact:preprocessor"):
        registry.verify_preprocessor(info, other, "@challenger")


def test_registered_model_binding_resolves_with_the_same_alias(store: Any) -> None:
    from sklearn.preprocessing import RobustScaler, StandardScaler

    features, _ = demo_dataset()
    prep_name = f"{store.model_name}-preprocessor"
    right = register_preprocessor_model(
        store.uri, prep_name, StandardScaler().set_output(transform="pandas").fit(features)
    )
    wrong = register_preprocessor_model(store.uri, prep_name, RobustScaler().fit(features))
    client(store.uri).set_registered_model_alias(prep_name, "challenger", right)
    version = copy_version(store.uri, store.model_name, store.versions["good"])

    sha = bind_registered_preprocessor(
        store.model_name, version, prep_name, registry_uri=store.uri, preprocessor_ref="@challenger"
    )

    registry = store.registry()
    info = registry.resolve(store.model_name, version)
    assert info.preprocessor_binding == f"registered_model:{prep_name}"
    assert info.preprocessor_sha256 == sha
    binding = PreprocessorBinding(registered_model=prep_name)
    verified = registry.verify_preprocessor(info, binding, "@challenger")
    assert verified is not None and verified.sha256 == sha
    assert verified.load().transform(features.head(2)).shape == (2, 30)

    # The preprocessor's alias moved to another version: that is not what the model saw.
    client(store.uri).set_registered_model_alias(prep_name, "challenger", wrong)
    with pytest.raises(PreprocessorError, match=f"expected sha256 {sha}, found [0-9a-f]{{64}}"):
        registry.verify_preprocessor(info, binding, "@challenger")
    # By version number the recorded preprocessor version is used.
    assert registry.verify_preprocessor(info, binding, version) == verified
    with pytest.raises(PreprocessorError, match="no alias @staging"):
        registry.verify_preprocessor(info, binding, "@staging")


def test_a_plan_binding_names_an_artifact_or_a_registered_model() -> None:
    assert binding_label(PreprocessorBinding(artifact="prep")) == "artifact:prep"
    assert binding_label(PreprocessorBinding(registered_model="p")) == "registered_model:p"
    with pytest.raises(ConfigError, match="not both"):
        binding_label(PreprocessorBinding(artifact="prep", registered_model="p"))
    with pytest.raises(ConfigError, match="needs `artifact` or `registered_model`"):
        binding_label(PreprocessorBinding())


def test_an_unreadable_binding_tag_is_refused_before_any_download(
    fresh_registry: Any, tmp_path: Path
) -> None:
    store = fresh_registry
    version = copy_version(store.uri, store.model_name, store.versions["good"])
    for key, value in (
        (TAG_PREPROCESSOR_BINDING, "s3-bucket"),
        (TAG_PREPROCESSOR_SHA256, "0" * 64),
    ):
        client(store.uri).set_model_version_tag(store.model_name, version, key, value)
    mlflow_client = RegistryClient(store.uri)
    versions = Versions(mlflow_client)
    verifier = PreprocessorVerifier(mlflow_client, versions, tmp_path / "cache")

    with pytest.raises(PreprocessorError, match="unreadable preprocessor binding 's3-bucket'"):
        verifier.verify(versions.resolve(store.model_name, version), None)
    assert not (tmp_path / "cache" / "preprocessors").exists()


def test_the_cache_is_gray_cache_dir_else_the_xdg_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GRAY_CACHE_DIR", str(tmp_path / "mine"))
    assert preprocessors.default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("GRAY_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert preprocessors.default_cache_dir() == tmp_path / "xdg" / "gray"
