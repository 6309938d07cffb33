"""Registry against real MLflow stores: sqlite, and `mlflow server` over HTTP."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gray.controller.errors import (
    AliasConflictError,
    AliasNotFoundError,
    ConfigError,
    ModelNotFoundError,
    PreprocessorError,
    RegistryError,
    SameVersionError,
    VersionNotReadyError,
)
from gray.controller.plan.models import ModelSpec, PreprocessorBinding, PromoteSpec
from gray.controller.registry import (
    TAG_PREPROCESSOR_BINDING,
    TAG_PREPROCESSOR_SHA256,
    Registry,
    bind_registered_preprocessor,
    declare_no_preprocessor,
    log_preprocessor,
    preprocessors,
    resolve_registry_uri,
)
from gray.demo.models import ROLE_ALIASES, ROLES, demo_dataset, train_demo_models
from gray.gateway.registry_loader import RegistryLoader

from .helpers import (
    artifact_repository,
    client,
    copy_version,
    register_preprocessor_model,
    replace_artifact_file,
    set_status,
)

ARTIFACT = PreprocessorBinding(artifact="preprocessor")


def plan_model(
    store: Any, baseline: str = "@champion", candidate: str = "@challenger"
) -> ModelSpec:
    return ModelSpec(name=store.model_name, baseline=baseline, candidate=candidate)


# -- resolve and pin ------------------------------------------------------------------------


def test_resolves_aliases_and_version_numbers_to_pinned_versions(store: Any) -> None:
    registry = store.registry()
    baseline = store.versions["baseline"]

    info = registry.resolve(store.model_name, "@champion")

    assert info.version == baseline
    assert info.model_uri == f"models:/{store.model_name}/{baseline}"
    assert info.status == "READY"
    assert info.aliases == ("champion",)
    assert info.run_id
    assert info.preprocessor_binding == "artifact:preprocessor"
    assert info.preprocessor_sha256 is not None and len(info.preprocessor_sha256) == 64
    assert info.tags["gray.demo.role"] == "baseline"
    assert registry.resolve(store.model_name, store.versions["good"]).aliases == ("challenger",)
    assert info.to_dict()["aliases"] == ["champion"]


def test_resolution_errors_say_what_to_fix(store: Any) -> None:
    registry = store.registry()
    with pytest.raises(AliasNotFoundError, match=r"no alias @staging .*@champion -> "):
        registry.resolve(store.model_name, "@staging")
    with pytest.raises(ModelNotFoundError, match="no registered model 'nope'"):
        registry.resolve("nope", "@champion")
    with pytest.raises(ModelNotFoundError, match="has no version 999"):
        registry.resolve(store.model_name, "999")
    with pytest.raises(ConfigError, match="use '@alias'"):
        registry.resolve(store.model_name, "champion")


def test_pin_resolves_both_sides_and_refuses_one_version_twice(store: Any) -> None:
    registry = store.registry()
    pinned = registry.pin(plan_model(store))
    assert (pinned.baseline.version, pinned.candidate.version) == (
        store.versions["baseline"],
        store.versions["good"],
    )
    with pytest.raises(SameVersionError, match=f"version {store.versions['baseline']}"):
        registry.pin(plan_model(store, candidate=store.versions["baseline"]))


def test_pin_refuses_a_version_that_is_not_ready(store: Any) -> None:
    set_status(store.root, store.model_name, store.versions["good"], "PENDING_REGISTRATION")
    with pytest.raises(VersionNotReadyError, match="PENDING_REGISTRATION, not READY"):
        store.registry().pin(plan_model(store))
    with pytest.raises(VersionNotReadyError):
        RegistryLoader(store.uri, store.model_name).load(store.versions["good"])


def test_a_pinned_rollout_keeps_its_versions_when_aliases_move(store: Any) -> None:
    registry = store.registry()
    model = plan_model(store)
    pinned = registry.pin(model)
    assert registry.alias_drift(model, pinned) == []

    newer = copy_version(store.uri, store.model_name, store.versions["good"])
    client(store.uri).set_registered_model_alias(store.model_name, "challenger", newer)
    client(store.uri).delete_registered_model_alias(store.model_name, "champion")

    drift = registry.alias_drift(model, pinned)
    good = store.versions["good"]
    assert len(drift) == 2
    assert "@champion" in drift[0] and "removed" in drift[0]
    assert f"moved from version {good} to {newer}" in drift[1]
    assert f"keeps testing version {good}" in drift[1]
    assert pinned.candidate.version == good
    # Plans that name version numbers cannot drift.
    by_number = plan_model(store, store.versions["baseline"], good)
    assert registry.alias_drift(by_number, registry.pin(by_number)) == []


def test_versions_lists_every_role_with_its_alias(demo_store: Any) -> None:
    versions = demo_store.registry().versions(demo_store.model_name)
    assert [info.version for info in versions] == [demo_store.versions[role] for role in ROLES]
    for role, info in zip(ROLES, versions, strict=True):
        assert info.aliases == (ROLE_ALIASES[role],)
        assert info.preprocessor_sha256 is not None


# -- preprocessors --------------------------------------------------------------------------


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


def test_a_version_declared_without_a_preprocessor_is_served_as_it_is(store: Any) -> None:
    # A Pipeline holds its own preprocessing: declaring "none" is a recorded decision,
    # unlike a missing tag, and the gateway may serve it without a preprocessor.
    version = copy_version(store.uri, store.model_name, store.versions["good"])
    registry = store.registry()
    with pytest.raises(PreprocessorError, match="not servable"):
        RegistryLoader(store.uri, store.model_name).load(version)
    declare_no_preprocessor(store.model_name, version, registry_uri=store.uri)
    info = registry.resolve(store.model_name, version)
    assert (info.preprocessor_sha256, info.preprocessor_binding) == ("none", "none")
    assert registry.verify_preprocessor(info, None) is None
    with pytest.raises(PreprocessorError, match="declared to need none"):
        registry.verify_preprocessor(info, ARTIFACT, version)
    bundle = RegistryLoader(store.uri, store.model_name).load(version)
    assert bundle.preprocessor is None and bundle.preprocessor_sha256 == "none"
    with pytest.raises(PreprocessorError, match="declared to need no separate"):
        registry.binder.log_preprocessor(store.model_name, version, Path(__file__))


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


def test_log_preprocessor_binds_a_model_logged_the_usual_way(store: Any, tmp_path: Path) -> None:
    """The training-side calls of docs/registering-a-model.md, run for real."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    features, labels = demo_dataset()
    scaler = StandardScaler().set_output(transform="pandas").fit(features)
    model = LogisticRegression(max_iter=2000).fit(scaler.transform(features), labels)

    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(store.uri)
    try:
        local = store.uri.startswith("sqlite")
        experiment_id = client(store.uri).create_experiment(
            f"training-{store.model_name}-{tmp_path.name}",
            artifact_location=(tmp_path / "mlruns").as_uri() if local else None,
        )
        with mlflow.start_run(experiment_id=experiment_id):
            logged = mlflow.sklearn.log_model(
                model,
                name="model",
                registered_model_name=store.model_name,
                input_example=features.head(3),
                signature=infer_signature(scaler.transform(features.head(3)), labels.head(3)),
                pip_requirements=["scikit-learn"],
            )
        version = str(logged.registered_model_version)
        sha = log_preprocessor(store.model_name, version, scaler)
    finally:
        mlflow.set_tracking_uri(previous_uri)

    registry = store.registry()
    info = registry.resolve(store.model_name, version)
    assert info.preprocessor_sha256 == sha
    bundle = RegistryLoader(store.uri, store.model_name).load(version)
    expected = model.predict(scaler.transform(features))
    assert np.array_equal(np.asarray(bundle.predict(features)), expected)
    assert bundle.input_example.shape == (3, 30)
    with pytest.raises(PreprocessorError, match="already bound"):
        log_preprocessor(store.model_name, version, scaler, registry_uri=store.uri)


def test_log_preprocessor_uploads_a_directory_as_it_is(fresh_registry: Any, tmp_path: Path) -> None:
    import joblib
    from sklearn.preprocessing import StandardScaler

    features, _ = demo_dataset()
    folder = tmp_path / "prep"
    folder.mkdir()
    joblib.dump(StandardScaler().fit(features), folder / "scaler.pkl")
    (folder / "README").write_text("fitted on the demo data\n")
    store = fresh_registry
    version = store.versions["good"]
    fresh = copy_version(store.uri, store.model_name, version)

    with pytest.raises(PreprocessorError, match="already holds files at 'preprocessor'"):
        log_preprocessor(store.model_name, fresh, folder, registry_uri=store.uri)
    sha = log_preprocessor(
        store.model_name, fresh, folder, registry_uri=store.uri, artifact_path="features"
    )

    assert sha == preprocessors.tree_sha256(folder)
    registry = store.registry()
    info = registry.resolve(store.model_name, fresh)
    assert info.preprocessor_binding == "artifact:features"
    verified = registry.verify_preprocessor(info, PreprocessorBinding(artifact="features"))
    assert verified is not None
    assert sorted(p.name for p in verified.path.iterdir()) == ["README", "scaler.pkl"]


# -- serving bundles ------------------------------------------------------------------------


def test_serving_bundles_apply_each_versions_own_preprocessor(demo_store: Any) -> None:
    features, labels = demo_dataset()
    bundles = {
        role: RegistryLoader(demo_store.uri, demo_store.model_name).load(demo_store.versions[role])
        for role in ROLES
    }
    for role, bundle in bundles.items():
        assert bundle.info.version == demo_store.versions[role]
        assert bundle.input_example.shape == (5, 30)
        assert len(bundle.predict(bundle.input_example)) == 5  # warm-up works for every role

    def accuracy(role: str) -> float:
        return float(np.mean(np.asarray(bundles[role].predict(features)) == labels.to_numpy()))

    assert accuracy("good") >= accuracy("baseline") >= 0.95
    assert accuracy("bad_preprocessor") <= accuracy("good") - 0.05
    largest = features.loc[[features["worst_area"].idxmax()]]
    with pytest.raises(Exception, match="outside the training range"):
        bundles["bad_raises"].predict(largest)
    started = time.perf_counter()
    for _ in range(5):
        bundles["bad_slow"].predict(features.head(1))
    assert time.perf_counter() - started >= 5 * 0.02


# -- promotion, rollback and history --------------------------------------------------------


def test_promote_then_roll_back_moves_aliases_tags_versions_and_records_history(
    store: Any,
) -> None:
    registry = store.registry()
    name, baseline, good = store.model_name, store.versions["baseline"], store.versions["good"]

    moves = registry.promote(name, good, PromoteSpec(), "r-1", expect_current=baseline)

    assert [(m.alias, m.from_version, m.to_version) for m in moves] == [
        ("previous-champion", None, baseline),
        ("champion", baseline, good),
    ]
    assert registry.resolve(name, "@champion").version == good
    assert registry.resolve(name, "@previous-champion").version == baseline
    promoted = registry.resolve(name, good).tags
    assert promoted["gray.rollout_id"] == "r-1" and "gray.promoted_at" in promoted
    replaced = registry.resolve(name, baseline).tags
    assert replaced["gray.rollout_id"] == "r-1" and "gray.replaced_at" in replaced

    back = registry.restore_previous(name, PromoteSpec(), rollout_id=None, reason="p99 spike")

    assert [(m.alias, m.from_version, m.to_version, m.reason) for m in back] == [
        ("champion", good, baseline, "p99 spike")
    ]
    assert registry.resolve(name, "@champion").version == baseline
    assert "gray.rolled_back_at" in registry.resolve(name, good).tags
    # Pressing the button again changes nothing.
    assert registry.restore_previous(name, PromoteSpec(), rollout_id=None, reason="again") == []

    history = registry.history(name)
    assert [(m.alias, m.from_version, m.to_version, m.rollout_id) for m in history] == [
        ("previous-champion", None, baseline, "r-1"),
        ("champion", baseline, good, "r-1"),
        ("champion", good, baseline, None),
    ]
    assert all("@" in move.actor and move.at.endswith("Z") for move in history)
    # Visible from anywhere: the history is plain registered-model tags in MLflow.
    tags = client(store.uri).get_registered_model(name).tags
    assert sorted(k for k in tags if k.startswith("gray.alias_move.")) == [
        "gray.alias_move.000001",
        "gray.alias_move.000002",
        "gray.alias_move.000003",
    ]


def test_alias_moves_refuse_when_the_alias_moved_underneath(store: Any) -> None:
    registry = store.registry()
    name, baseline, good = store.model_name, store.versions["baseline"], store.versions["good"]
    client(store.uri).set_registered_model_alias(name, "champion", good)  # someone else

    with pytest.raises(AliasConflictError, match=f"points at version {good}, not at the pinned"):
        registry.promote(name, good, PromoteSpec(), "r-2", expect_current=baseline)
    with pytest.raises(AliasConflictError, match=f"not version {baseline} as expected"):
        registry.set_alias(
            name, "champion", baseline, expected_from=baseline, rollout_id=None, reason="x"
        )
    assert registry.history(name) == []
    assert registry.resolve(name, "@champion").version == good

    move = registry.set_alias(
        name, "champion", baseline, expected_from=good, rollout_id="r-3", reason="by hand"
    )
    assert (move.from_version, move.to_version, move.rollout_id) == (good, baseline, "r-3")
    assert registry.history(name) == [move]


def test_roll_back_without_a_kept_previous_version_is_refused(store: Any) -> None:
    registry = store.registry()
    with pytest.raises(AliasNotFoundError, match="no alias @previous-champion"):
        registry.restore_previous(store.model_name, PromoteSpec(), rollout_id=None, reason="x")
    with pytest.raises(ConfigError, match="keep_previous_as is empty"):
        registry.restore_previous(
            store.model_name, PromoteSpec(keep_previous_as=None), rollout_id=None, reason="x"
        )


def test_mark_rolled_back_tags_the_version(store: Any) -> None:
    registry = store.registry()
    registry.mark_rolled_back(store.model_name, store.versions["good"], "r-9")
    tags = registry.resolve(store.model_name, "@challenger").tags
    assert tags["gray.rollout_id"] == "r-9"
    assert tags["gray.rolled_back_at"].endswith("Z")


# -- where the registry is, and when it is not there ---------------------------------------


def test_unreachable_server_fails_fast_with_uri_and_cause(unused_port: int) -> None:
    uri = f"http://127.0.0.1:{unused_port}"
    started = time.monotonic()
    with pytest.raises(RegistryError) as caught:
        Registry(uri, retries=2).resolve("fraud", "@champion")
    elapsed = time.monotonic() - started
    assert type(caught.value) is RegistryError and caught.value.exit_code == 4
    assert uri in caught.value.message
    assert "Connection refused" in caught.value.message
    assert "after 3 attempts" in caught.value.message
    assert 1.4 <= elapsed < 10  # two backoffs (0.5 s + 1 s), no MLflow-internal retry storm


def test_missing_sqlite_database_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "mlflow.db"
    with pytest.raises(ConfigError, match="no MLflow database"):
        Registry(f"sqlite:///{path}").versions("fraud")
    assert not path.exists()


def test_registry_uri_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert resolve_registry_uri("sqlite:///plan.db", None) == "sqlite:///plan.db"
    assert resolve_registry_uri(None, "http://cli:5000") == "http://cli:5000"
    assert resolve_registry_uri("sqlite:///plan.db", "http://cli:5000") == "http://cli:5000"
    assert resolve_registry_uri("", "") == "http://env:5000"
    assert resolve_registry_uri(None, None) == "http://env:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert resolve_registry_uri(None, None) == "sqlite:///mlflow.db"


def test_demo_models_train_fast_with_their_defects() -> None:
    started = time.perf_counter()
    demo = train_demo_models(seed=0)
    assert time.perf_counter() - started < 10
    accuracy = demo.holdout_accuracy
    assert accuracy["good"] >= accuracy["baseline"] >= 0.9
    assert accuracy["bad_preprocessor"] <= accuracy["good"] - 0.05
    features, _ = demo_dataset()
    scaled = demo.preprocessors["bad_raises"].transform(features)
    refused = 1 - float(np.mean(demo.models["bad_raises"].accepts(scaled)))
    assert 0.2 <= refused <= 0.3


def test_other_mlflow_writers_share_the_client_and_its_error_mapping(store: Any) -> None:
    registry = store.registry()
    registered = registry.client.call(
        "read the model", lambda: registry.client.mlflow.get_registered_model(store.model_name)
    )
    assert registered.name == store.model_name
    with pytest.raises(ModelNotFoundError, match="gone"):
        registry.client.call(
            "read a missing model",
            lambda: registry.client.mlflow.get_registered_model("no-such-model"),
            missing=lambda: ModelNotFoundError("gone"),
        )


def test_a_preprocessor_returning_arrays_keeps_the_column_names(fresh_registry: Any) -> None:
    from sklearn.preprocessing import StandardScaler

    store = fresh_registry
    features, labels = demo_dataset()
    version = copy_version(store.uri, store.model_name, store.versions["good"])
    log_preprocessor(
        store.model_name,
        version,
        StandardScaler().fit(features),  # no set_output: transform returns a bare array
        registry_uri=store.uri,
        artifact_path="plain",
    )
    bundle = RegistryLoader(store.uri, store.model_name).load(version)
    predicted = np.asarray(bundle.predict(features))
    assert float(np.mean(predicted == labels.to_numpy())) > 0.95


def test_successive_promotions_keep_the_version_each_one_replaced(fresh_registry: Any) -> None:
    store = fresh_registry
    registry = store.registry()
    name, baseline, good = store.model_name, store.versions["baseline"], store.versions["good"]
    third = copy_version(store.uri, name, good)

    registry.promote(name, good, PromoteSpec(), "r-1")
    second = registry.promote(name, third, PromoteSpec(), "r-2", expect_current=good)

    assert [(m.alias, m.from_version, m.to_version) for m in second] == [
        ("previous-champion", baseline, good),
        ("champion", good, third),
    ]
    # Promoting what is already the champion moves nothing.
    assert registry.promote(name, third, PromoteSpec(), "r-3") == []
    assert registry.resolve(name, third).tags["gray.rollout_id"] == "r-3"
    without_previous = PromoteSpec(keep_previous_as=None)
    moves = registry.promote(name, good, without_previous, "r-4")
    assert [(m.alias, m.to_version) for m in moves] == [("champion", good)]
    assert registry.resolve(name, "@previous-champion").version == good
