"""The model shapes the conformance suite serves, registered in one sqlite MLflow store.

Every shape is declared to need no separate preprocessor (`gray registry bind --none`),
as a team whose preprocessing lives inside its model would: the gateway then gives the
model the raw input, exactly what `mlflow models serve` gets.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import mlflow.pyfunc
import numpy as np
import pandas as pd

DATAFRAME = "conf-frame"  # sklearn pipeline, DataFrame example with mixed columns
TENSOR = "conf-tensor"  # sklearn pipeline, numpy example (tensor signature)
BARE = "conf-bare"  # pyfunc without signature or example
MULTI = "conf-multi"  # pyfunc: several outputs per row, takes params
SHAPES = (DATAFRAME, TENSOR, BARE, MULTI)  # each served by mlflow models serve and the gateway
PREPROCESSED = "conf-preprocessed"  # a real preprocessor bound: served by the gateway only
# Served with --env-manager local: naming the requirements skips MLflow's slow inference.
REQUIREMENTS = ["mlflow", "scikit-learn", "pandas"]


def frame_rows() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    rows = 60
    return pd.DataFrame(
        {
            "amount": rng.uniform(1, 100, rows).round(2),
            "count": rng.integers(0, 10, rows),
            "country": rng.choice(["fr", "de", "it"], rows),
            "member": rng.choice([True, False], rows),
            "discount": np.where(rng.random(rows) < 0.3, np.nan, rng.uniform(0, 1, rows)),
        }
    )


def frame_labels(frame: pd.DataFrame) -> np.ndarray:
    return ((frame["amount"] / 10 + frame["count"] + frame["member"] * 3) > 9).astype(int).values


def tensor_rows() -> np.ndarray:
    return np.random.default_rng(3).normal(size=(60, 4))


class RowSums(mlflow.pyfunc.PythonModel):
    """No signature, no example: sums the numeric values of each row, whatever they are."""

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        frame = pd.DataFrame(model_input)
        return frame.select_dtypes("number").sum(axis=1).to_numpy()


class ScaledPair(mlflow.pyfunc.PythonModel):
    """Two outputs per row; `scale` (a param, default 1.0) multiplies the sum."""

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        scale = float((params or {}).get("scale", 1.0))
        frame = pd.DataFrame(model_input)
        return pd.DataFrame(
            {
                "total": (frame["x"] + frame["y"]) * scale,
                "larger": np.where(frame["x"] > frame["y"], "x", "y"),
            }
        )


@dataclass(frozen=True)
class Store:
    uri: str
    root: Path

    def model_uri(self, name: str) -> str:
        return f"models:/{name}/1"


def build_store(root: Path, registered: Callable[[Store, str], None] | None = None) -> Store:
    """Register every shape as version 1 of its own model, each declared to need no
    separate preprocessor.

    `registered` is called as soon as each shape of SHAPES is servable, so servers can start
    while the rest is still being registered.
    """
    from mlflow import MlflowClient

    from gray.controller.registry import declare_no_preprocessor

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    uri = f"sqlite:///{root}/mlflow.db"
    store = Store(uri, root)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("conformance", artifact_location=(root / "art").as_uri())
    for name, save in (
        (DATAFRAME, _save_frame_model),
        (TENSOR, _save_tensor_model),
        (BARE, _save_bare_model),
        (MULTI, _save_multi_model),
    ):
        run = client.create_run(experiment)
        with tempfile.TemporaryDirectory() as staging:
            save(f"{staging}/model")
            client.log_artifacts(run.info.run_id, f"{staging}/model", "model")
        client.set_terminated(run.info.run_id)
        client.create_registered_model(name)
        client.create_model_version(
            name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
        )
        declare_no_preprocessor(name, "1", registry_uri=uri)
        if registered is not None:
            registered(store, name)
    _register_preprocessed(client, experiment, uri)
    return store


def column_preprocessor() -> Any:
    """Fitted on named raw columns; what a team binds next to a model of its features."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return ColumnTransformer(
        [
            (
                "numbers",
                make_pipeline(SimpleImputer(), StandardScaler()),
                ["amount", "count", "discount"],
            ),
            ("country", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["country"]),
            ("member", "passthrough", ["member"]),
        ]
    ).fit(frame_rows())


def features_model(preprocessor: Any) -> Any:
    from sklearn.linear_model import LogisticRegression

    rows = frame_rows()
    features = preprocessor.transform(rows).astype(float)
    return LogisticRegression().fit(features, frame_labels(rows))


def _register_preprocessed(client: Any, experiment: str, uri: str) -> None:
    """The model takes the preprocessor's output; its input example holds raw rows."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from gray.controller.registry import log_preprocessor

    preprocessor = column_preprocessor()
    model = features_model(preprocessor)
    raw = frame_rows().dropna().head(5).reset_index(drop=True)
    features = preprocessor.transform(raw).astype(float)
    run = client.create_run(experiment)
    with tempfile.TemporaryDirectory() as staging:
        mlflow.sklearn.save_model(
            model,
            f"{staging}/model",
            signature=infer_signature(features, model.predict(features)),
            input_example=raw,
            skops_trusted_types=["numpy.dtype"],
            pip_requirements=REQUIREMENTS,
        )
        client.log_artifacts(run.info.run_id, f"{staging}/model", "model")
    client.set_terminated(run.info.run_id)
    client.create_registered_model(PREPROCESSED)
    client.create_model_version(
        PREPROCESSED, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    log_preprocessor(PREPROCESSED, "1", preprocessor, registry_uri=uri)


def frame_pipeline() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    columns = ColumnTransformer(
        [
            (
                "numbers",
                make_pipeline(SimpleImputer(), StandardScaler()),
                ["amount", "count", "discount"],
            ),
            ("country", OneHotEncoder(handle_unknown="ignore"), ["country"]),
            ("member", "passthrough", ["member"]),
        ]
    )
    rows = frame_rows()
    return make_pipeline(columns, LogisticRegression()).fit(rows, frame_labels(rows))


def _save_frame_model(path: str) -> None:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    pipeline = frame_pipeline()
    # Complete rows: requests with missing values are still read (by MLflow's parser).
    example = frame_rows().dropna().head(8).reset_index(drop=True)
    mlflow.sklearn.save_model(
        pipeline,
        path,
        signature=infer_signature(example, pipeline.predict(example)),
        input_example=example,
        skops_trusted_types=["numpy.dtype"],
        pip_requirements=REQUIREMENTS,
    )


def tensor_pipeline() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = tensor_rows()
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(rows, rows[:, 0] > 0)


def _save_tensor_model(path: str) -> None:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    pipeline = tensor_pipeline()
    example = tensor_rows()[:5]
    mlflow.sklearn.save_model(
        pipeline,
        path,
        signature=infer_signature(example, pipeline.predict(example)),
        input_example=example,
        skops_trusted_types=["numpy.dtype"],
        pip_requirements=REQUIREMENTS,
    )


def _save_bare_model(path: str) -> None:
    mlflow.pyfunc.save_model(path, python_model=RowSums(), pip_requirements=REQUIREMENTS)


def _save_multi_model(path: str) -> None:
    from mlflow.models import infer_signature

    example = pd.DataFrame({"x": [1.0, 4.0], "y": [2.0, 3.0]})
    params = {"scale": 1.0}
    output = ScaledPair().predict(None, example, params)
    mlflow.pyfunc.save_model(
        path,
        python_model=ScaledPair(),
        signature=infer_signature(example, output, params),
        input_example=(example, params),
        pip_requirements=REQUIREMENTS,
    )
