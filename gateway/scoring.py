"""One request body on one version: read it, predict, and say whose fault a failure is.

Runs in the version's worker thread and never raises. The outcome decides what the
gates see: a client's mistake is a bad request of the version it was routed to; a
failure of the version on an input it accepted is that version's error.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from gray.controller.errors import PredictionInputError
from gray.gateway.inputs import ParsedRequest, RequestReader, to_jsonable
from gray.gateway.stats import Outcome

# Input checks of a version's own library: an input they refuse is the client's mistake
# (MLflow's scoring server answers these 400 too).
_INPUT_CHECK_MODULES = (
    ("sklearn", "utils", "validation.py"),
    ("sklearn", "utils", "_array_api.py"),
)


@dataclass(frozen=True)
class Computed:
    """What one version made of one request body."""

    outcome: str
    outputs: Any
    message: str | None
    seconds: float


def compute(
    servable: Any, reader: RequestReader, body: bytes, content_type: str | None
) -> Computed:
    """Parse, check and predict; every failure becomes an outcome with a message."""
    started = time.perf_counter()
    parsed = read(reader, body, content_type, started)
    if isinstance(parsed, Computed):
        return parsed
    return predict(servable, reader, parsed, started)


def read(
    reader: RequestReader, body: bytes, content_type: str | None, started: float
) -> ParsedRequest | Computed:
    """The request read for the version, or the bad request it is."""
    try:
        return reader.read(body, content_type)
    except PredictionInputError as error:
        return Computed(Outcome.BAD_REQUEST, None, error.message, time.perf_counter() - started)
    except Exception as error:  # a parser bug must not look like the model's fault
        message = f"unusable input: {error!r}"
        return Computed(Outcome.BAD_REQUEST, None, message, time.perf_counter() - started)


def predict(
    servable: Any, reader: RequestReader, parsed: ParsedRequest, started: float
) -> Computed:
    try:
        if parsed.like_example and reader.fast_predict is not None:
            raw = reader.fast_predict(parsed.data)
        elif parsed.params is None:
            raw = servable.predict(parsed.data)
        else:
            raw = servable.predict(parsed.data, params=parsed.params)
        outputs = to_jsonable(raw)
    except BaseException as error:  # whatever the model raises is judged below
        refused = refused_input(error)
        seconds = time.perf_counter() - started
        if refused is not None:
            return Computed(Outcome.BAD_REQUEST, None, refused, seconds)
        return Computed(Outcome.ERROR, None, f"{type(error).__name__}: {error}", seconds)
    return Computed(Outcome.OK, outputs, None, time.perf_counter() - started)


def refused_input(error: BaseException) -> str | None:
    """The reason when `error` is the version's input checks refusing the input, else None.

    Two kinds count: MLflow's schema and params enforcement (an MlflowException with a
    4xx status), and scikit-learn's input validation (values it cannot take, such as
    NaN for most estimators). A version that passed its warm-up on its own input
    example and refuses one particular input is telling the client about that input.
    """
    from mlflow.exceptions import MlflowException

    if isinstance(error, MlflowException):
        if 400 <= error.get_http_status_code() < 500:
            return f"the input does not fit this version: {' '.join(error.message.split())[:600]}"
        return None
    if isinstance(error, ValueError | TypeError) and _raised_in_input_checks(error):
        return f"this version's input checks refused the input: {error}"
    return None


def _raised_in_input_checks(error: BaseException) -> bool:
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return False
    parts = PurePath(frames[-1].filename).parts
    return any(parts[-len(tail) :] == tail for tail in _INPUT_CHECK_MODULES)


def unchecked_predictor(servable: Any, sample: Any) -> Callable[[Any], Any] | None:
    """A `predict` that skips MLflow's schema enforcement, for data typed like `sample`.

    Enforcement looks only at column names and dtypes, so when it leaves `sample`
    (after the version's preprocessor) unchanged, it leaves unchanged every input
    typed the same way, which the fast paths guarantee. Only scikit-learn models
    without params qualify (their pyfunc does nothing else), and only when the
    shortcut answers `sample` exactly as the checked `predict` does.
    """
    model = getattr(servable, "model", None)
    preprocess = getattr(servable, "preprocess", None)
    if model is None or preprocess is None or sample is None:
        return None
    metadata = getattr(model, "metadata", None)
    run = getattr(model, "_predict_fn", None)
    if getattr(model, "loader_module", None) != "mlflow.sklearn" or metadata is None or run is None:
        return None
    if metadata.get_params_schema() is not None:
        return None
    from mlflow.models.utils import _enforce_schema

    model_input = preprocess(sample)
    schema = metadata.get_input_schema()
    if schema is not None and not _same_data(
        _enforce_schema(model_input, schema, "mlflow.sklearn"), model_input
    ):
        return None
    if to_jsonable(run(model_input)) != to_jsonable(model.predict(model_input)):
        return None
    return lambda data: run(preprocess(data))


def _same_data(left: Any, right: Any) -> bool:
    import numpy as np
    import pandas as pd

    if isinstance(left, pd.DataFrame) and isinstance(right, pd.DataFrame):
        return (
            list(left.columns) == list(right.columns)
            and list(left.dtypes) == list(right.dtypes)
            and left.equals(right)
        )
    if isinstance(left, np.ndarray) and isinstance(right, np.ndarray):
        return (
            left.dtype == right.dtype
            and left.shape == right.shape
            and bool(np.array_equal(left, right, equal_nan=True))
        )
    return False
