"""Helpers that act on a registry the way other people and tools would, through MLflow."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import Any


def client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def artifact_repository(uri: str, name: str, version: str) -> Any:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    location = client(uri).get_model_version_download_uri(name, version)
    return get_artifact_repository(location, tracking_uri=uri, registry_uri=uri)


def copy_version(uri: str, name: str, version: str) -> str:
    """A new version of `name` sharing `version`'s artifacts, with no tags (a re-registration)."""
    mlflow_client = client(uri)
    original = mlflow_client.get_model_version(name, version)
    created = mlflow_client.create_model_version(
        name, source=original.source, run_id=original.run_id
    )
    return str(created.version)


def set_status(root: Path, name: str, version: str, status: str) -> None:
    """Put a version in a registration state the open-source stores finish synchronously."""
    with sqlite3.connect(root / "mlflow.db") as db:
        changed = db.execute(
            "UPDATE model_versions SET status = ? WHERE name = ? AND version = ?",
            (status, name, int(version)),
        ).rowcount
    assert changed == 1


def replace_artifact_file(uri: str, name: str, version: str, artifact_dir: str, obj: Any) -> None:
    """Overwrite `artifact_dir/preprocessor.joblib` of a version with another object."""
    import joblib

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "preprocessor.joblib"
        joblib.dump(obj, path)
        artifact_repository(uri, name, version).log_artifact(str(path), artifact_dir)


def register_preprocessor_model(uri: str, name: str, preprocessor: Any) -> str:
    """Register a fitted scikit-learn transformer as a version of its own model `name`."""
    import mlflow.sklearn
    from mlflow.exceptions import MlflowException

    from gray.demo.models import demo_experiment

    mlflow_client = client(uri)
    try:
        mlflow_client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    experiment_id = demo_experiment(mlflow_client, uri, None)
    run = mlflow_client.create_run(experiment_id, run_name=f"{name}-preprocessor")
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = Path(scratch) / "model"
        mlflow.sklearn.save_model(preprocessor, str(model_dir), pip_requirements=["scikit-learn"])
        mlflow_client.log_artifacts(run.info.run_id, str(model_dir), "model")
    mlflow_client.set_terminated(run.info.run_id)
    created = mlflow_client.create_model_version(
        name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    return str(created.version)
