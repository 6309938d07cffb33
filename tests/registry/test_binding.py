"""Binding on the training side, in real MLflow stores: a file, a folder, an object logged
the usual way, a registered preprocessor model, or a declared "none"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from gray.controller.errors import ConfigError, ModelNotFoundError, PreprocessorError
from gray.controller.plan.models import PreprocessorBinding
from gray.controller.registry import (
    Bound,
    declare_no_preprocessor,
    log_preprocessor,
    preprocessors,
)
from gray.demo.models import demo_dataset
from gray.gateway.registry_loader import RegistryLoader

from .helpers import client, copy_version, register_preprocessor_model

ARTIFACT = PreprocessorBinding(artifact="preprocessor")


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


def test_bind_takes_a_path_a_registered_model_or_nothing(
    fresh_registry: Any, tmp_path: Path
) -> None:
    from sklearn.preprocessing import StandardScaler

    store = fresh_registry
    features, _ = demo_dataset()
    prep_name = f"{store.model_name}-preprocessor"
    register_preprocessor_model(store.uri, prep_name, StandardScaler().fit(features))
    folder = tmp_path / "prep"
    folder.mkdir()
    joblib.dump(StandardScaler().fit(features), folder / "scaler.joblib")
    by_path, by_model, by_nothing = (
        copy_version(store.uri, store.model_name, store.versions["good"]) for _ in range(3)
    )
    binder = store.registry().binder

    from_path = binder.bind(
        store.model_name, by_path, path=folder / "scaler.joblib", artifact_path="/scaler/"
    )
    from_model = binder.bind(store.model_name, by_model, registered_model=prep_name)
    declared = binder.bind(store.model_name, by_nothing)

    assert from_path == Bound("artifact:scaler", preprocessors.tree_sha256(folder))
    assert from_model.binding == f"registered_model:{prep_name}"
    assert declared == Bound("none", "none")
    for version, bound in ((by_path, from_path), (by_model, from_model), (by_nothing, declared)):
        info = store.registry().resolve(store.model_name, version)
        assert (info.preprocessor_binding, info.preprocessor_sha256) == (
            bound.binding,
            bound.sha256,
        )


def test_binding_refuses_an_empty_artifact_path_or_a_preprocessor_model_without_versions(
    fresh_registry: Any, tmp_path: Path
) -> None:
    store = fresh_registry
    version = copy_version(store.uri, store.model_name, store.versions["good"])
    client(store.uri).create_registered_model("empty-preprocessor")
    binder = store.registry().binder
    with pytest.raises(ConfigError, match="artifact_path must name a folder"):
        binder.log_preprocessor(store.model_name, version, tmp_path, artifact_path="/")
    with pytest.raises(ModelNotFoundError, match="'empty-preprocessor' has no versions"):
        binder.bind_registered_preprocessor(store.model_name, version, "empty-preprocessor")
    info = store.registry().resolve(store.model_name, version)
    assert info.preprocessor_sha256 is None  # nothing was bound
