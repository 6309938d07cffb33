"""Demo models: real scikit-learn classifiers, one good and three with realistic defects.

The data is scikit-learn's bundled breast-cancer set (569 rows, 30 numeric features), so
nothing is downloaded. Every version is registered with a StandardScaler-style preprocessor
bound by hash, an input example of raw rows for warm-up, and a signature.

Roles and their defects:
- ``baseline``: LogisticRegression with strong regularisation (alias ``champion``).
- ``good``: LogisticRegression with the default regularisation, at least as accurate
  (alias ``challenger``).
- ``bad_raises``: trained on a filtered export that left out the largest tumours; it refuses
  (ValueError) rows outside its training range of ``worst_area``, about a quarter of them.
- ``bad_slow``: the good model behind a blocking call of ``SLOW_PREDICT_SECONDS`` per predict.
- ``bad_preprocessor``: the good model registered with a RobustScaler from another
  experiment instead of the StandardScaler it was trained with; accuracy drops ~7 points.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

ROLES: tuple[str, ...] = ("baseline", "good", "bad_raises", "bad_slow", "bad_preprocessor")
ROLE_ALIASES: dict[str, str] = {
    "baseline": "champion",
    "good": "challenger",
    "bad_raises": "bad-raises",
    "bad_slow": "bad-slow",
    "bad_preprocessor": "bad-preprocessor",
}
SLOW_PREDICT_SECONDS = 0.02
GUARDED_FEATURE = "worst_area"
# Share of the training rows the defective export kept (by GUARDED_FEATURE, smallest first).
GUARDED_KEPT_QUANTILE = 0.75
DEMO_EXPERIMENT = "gray-demo"
PIP_REQUIREMENTS = ("scikit-learn", "pandas", "numpy", "gray-rollout")
SKOPS_TRUSTED_TYPES = (
    "gray.demo.models.RangeGuardedClassifier",
    "gray.demo.models.SlowClassifier",
)


class RangeGuardedClassifier(ClassifierMixin, BaseEstimator):
    """A classifier that refuses rows outside the range of one feature seen in training.

    Validating inputs against the training range is a common production guard; trained on
    a truncated export it turns a data bug into errors on a share of live traffic.
    """

    def __init__(self, estimator: Any = None, feature: str = GUARDED_FEATURE) -> None:
        self.estimator = estimator
        self.feature = feature

    def fit(self, X: Any, y: Any) -> RangeGuardedClassifier:
        column = np.asarray(X[self.feature], dtype=float)
        self.low_ = float(column.min())
        self.high_ = float(column.max())
        self.estimator.fit(X, y)
        self.classes_ = self.estimator.classes_
        return self

    def accepts(self, X: Any) -> Any:
        """A boolean mask of the rows inside the training range."""
        column = np.asarray(X[self.feature], dtype=float)
        return (column >= self.low_) & (column <= self.high_)

    def _check_range(self, X: Any) -> None:
        outside = ~self.accepts(X)
        if outside.any():
            raise ValueError(
                f"{int(outside.sum())} row(s) have {self.feature} outside the training range "
                f"[{self.low_:.3f}, {self.high_:.3f}]"
            )

    def predict(self, X: Any) -> Any:
        self._check_range(X)
        return self.estimator.predict(X)

    def predict_proba(self, X: Any) -> Any:
        self._check_range(X)
        return self.estimator.predict_proba(X)


class SlowClassifier(ClassifierMixin, BaseEstimator):
    """A fitted classifier behind a blocking call, like a feature lookup over the network."""

    def __init__(self, estimator: Any = None, delay_seconds: float = SLOW_PREDICT_SECONDS) -> None:
        self.estimator = estimator
        self.delay_seconds = delay_seconds

    def fit(self, X: Any, y: Any) -> SlowClassifier:
        self.estimator.fit(X, y)
        self.classes_ = self.estimator.classes_
        return self

    def predict(self, X: Any) -> Any:
        time.sleep(self.delay_seconds)
        return self.estimator.predict(X)

    def predict_proba(self, X: Any) -> Any:
        time.sleep(self.delay_seconds)
        return self.estimator.predict_proba(X)


@dataclass(frozen=True)
class DemoModels:
    """Trained demo models with the preprocessor each one is registered with."""

    models: dict[str, Any]
    preprocessors: dict[str, Any]
    holdout_accuracy: dict[str, float]
    input_example: Any  # pandas.DataFrame of raw rows every model accepts

    def predict(self, role: str, frame: Any) -> Any:
        return self.models[role].predict(self.preprocessors[role].transform(frame))


def demo_dataset() -> tuple[Any, Any]:
    """The raw features (snake_case columns) and the 0/1 labels, in a fixed order."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    features = bunch.data.rename(columns=lambda name: name.replace(" ", "_")).astype("float64")
    labels = bunch.target.rename("label").astype("int64")
    return features, labels


def train_demo_models(seed: int = 0) -> DemoModels:
    """Train every demo role on a fixed split; takes well under a second."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import RobustScaler, StandardScaler

    features, labels = demo_dataset()
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=0.3, random_state=seed, stratify=labels
    )
    scaler = StandardScaler().set_output(transform="pandas").fit(x_train)
    scaled_train = scaler.transform(x_train)

    baseline = LogisticRegression(C=0.03, max_iter=2000).fit(scaled_train, y_train)
    good = LogisticRegression(C=1.0, max_iter=2000).fit(scaled_train, y_train)

    kept = x_train[GUARDED_FEATURE] <= x_train[GUARDED_FEATURE].quantile(GUARDED_KEPT_QUANTILE)
    raises = RangeGuardedClassifier(LogisticRegression(C=1.0, max_iter=2000)).fit(
        scaled_train[kept], y_train[kept]
    )
    slow = SlowClassifier(LogisticRegression(C=1.0, max_iter=2000)).fit(scaled_train, y_train)
    wrong_scaler = RobustScaler().set_output(transform="pandas").fit(x_train)

    models = {
        "baseline": baseline,
        "good": good,
        "bad_raises": raises,
        "bad_slow": slow,
        "bad_preprocessor": good,
    }
    preprocessors = {role: scaler for role in ROLES}
    preprocessors["bad_preprocessor"] = wrong_scaler

    # Rows inside every model's accepted range, so warm-up never trips the guarded model.
    example = features[raises.accepts(scaler.transform(features))].head(5).reset_index(drop=True)

    accuracy: dict[str, float] = {}
    for role in ROLES:
        # The guarded model's defect shows as errors, so score it on the rows it answers.
        rows = x_test[raises.accepts(scaler.transform(x_test))] if role == "bad_raises" else x_test
        predicted = models[role].predict(preprocessors[role].transform(rows))
        accuracy[role] = float(np.mean(predicted == y_test.loc[rows.index]))
    return DemoModels(
        models=models, preprocessors=preprocessors, holdout_accuracy=accuracy, input_example=example
    )


def register_demo_models(
    registry_uri: str,
    model_name: str = "fraud",
    *,
    which: Iterable[str] = ROLES,
    seed: int = 0,
    artifact_location: str | None = None,
) -> dict[str, str]:
    """Register the demo roles in `which` as new versions of `model_name`; role -> version.

    Each version gets its preprocessor bound by hash (`log_preprocessor`), the alias of its
    role (`champion`, `challenger`, `bad-raises`, ...), an input example and a signature.
    For a sqlite registry the artifacts go next to the database file unless
    `artifact_location` says otherwise.
    """
    from mlflow import MlflowClient

    roles = tuple(which)
    unknown = [role for role in roles if role not in ROLES]
    if unknown:
        raise ValueError(f"unknown demo roles {unknown}; choose from {list(ROLES)}")
    demo = train_demo_models(seed)
    client = MlflowClient(tracking_uri=registry_uri, registry_uri=registry_uri)
    experiment_id = demo_experiment(client, registry_uri, artifact_location)
    if not _registered_model_exists(client, model_name):
        client.create_registered_model(
            model_name, description="gray demo: breast-cancer classifiers with defects"
        )

    return {
        role: _register_role(client, experiment_id, model_name, role, demo, registry_uri)
        for role in roles
    }


def _register_role(
    client: Any,
    experiment_id: str,
    model_name: str,
    role: str,
    demo: DemoModels,
    registry_uri: str,
) -> str:
    """One role as a new version: its run, model, preprocessor binding and alias."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from gray.controller.registry import log_preprocessor

    model = demo.models[role]
    scaled_example = demo.preprocessors["good"].transform(demo.input_example)
    signature = infer_signature(scaled_example, model.predict(scaled_example))
    run = client.create_run(experiment_id, run_name=f"demo-{role}")
    run_id = run.info.run_id
    client.log_param(run_id, "role", role)
    client.log_metric(run_id, "holdout_accuracy", demo.holdout_accuracy[role])
    with tempfile.TemporaryDirectory(prefix="gray-demo-") as staging:
        model_dir = Path(staging) / "model"
        mlflow.sklearn.save_model(
            model,
            str(model_dir),
            signature=signature,
            input_example=demo.input_example,
            pip_requirements=list(PIP_REQUIREMENTS),
            # skops refuses unknown classes on load; the demo's own wrappers are known.
            skops_trusted_types=list(SKOPS_TRUSTED_TYPES),
        )
        client.log_artifacts(run_id, str(model_dir), "model")
    client.set_terminated(run_id)
    version = client.create_model_version(
        model_name,
        source=f"{run.info.artifact_uri}/model",
        run_id=run_id,
        tags={"gray.demo.role": role},
        description=f"gray demo model: {role}",
    )
    log_preprocessor(
        model_name, version.version, demo.preprocessors[role], registry_uri=registry_uri
    )
    client.set_registered_model_alias(model_name, ROLE_ALIASES[role], version.version)
    return str(version.version)


def demo_experiment(client: Any, registry_uri: str, artifact_location: str | None) -> str:
    if artifact_location is None:
        from gray.controller.registry import RegistryClient

        return RegistryClient(registry_uri).experiment_id(DEMO_EXPERIMENT)
    existing = client.get_experiment_by_name(DEMO_EXPERIMENT)
    if existing is not None:
        return str(existing.experiment_id)
    return str(client.create_experiment(DEMO_EXPERIMENT, artifact_location=artifact_location))


def _registered_model_exists(client: Any, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    return True
