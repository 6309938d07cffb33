"""One version as the gateway serves it: the model, its verified preprocessor, its input
example, and the way raw rows go through them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gray.controller.errors import RegistryError
from gray.controller.registry.client import describe_cause
from gray.controller.registry.versions import NO_PREPROCESSOR, ModelVersionInfo


@dataclass(frozen=True)
class ServingBundle:
    """What a serving endpoint needs for one version: model, verified preprocessor, example."""

    info: ModelVersionInfo
    model: Any
    preprocessor: Any | None
    input_example: Any | None

    @property
    def preprocessor_sha256(self) -> str | None:
        """The hash of the preprocessor applied; the loader checked it against the
        version's tag."""
        if self.preprocessor is not None or self.info.preprocessor_sha256 == NO_PREPROCESSOR:
            return self.info.preprocessor_sha256
        return None

    @property
    def metadata(self) -> Any:
        """The model's MLflow metadata (signature, params schema)."""
        return getattr(self.model, "metadata", None)

    @property
    def raw_input_schema(self) -> Any:
        """The MLflow schema requests must fit before anything is applied to them.

        Without a preprocessor it is the model's own signature. With one, the signature
        describes what the preprocessor produces, so the raw rows are described by the
        input example (the rows the preprocessor was fitted on); None without an example.
        """
        if self.preprocessor is None:
            return self.metadata.get_input_schema() if self.metadata is not None else None
        if self.input_example is None:
            return None
        from mlflow.models import infer_signature

        return infer_signature(self.input_example).inputs

    @property
    def checks_inputs(self) -> bool:
        """Whether `predict` enforces `raw_input_schema` itself (the model's pyfunc does)."""
        return self.preprocessor is None

    def preprocess(self, data: Any) -> Any:
        """Raw rows as the model takes them: through the bound preprocessor, if any."""
        if self.preprocessor is None:
            return data
        return _as_frame(self.preprocessor.transform(data), data)

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """Preprocess raw rows exactly as at training time, then predict."""
        return self.model.predict(self.preprocess(data), params=params)


def _as_frame(transformed: Any, raw: Any) -> Any:
    """Give an array output the raw column names when the widths match: a pyfunc model
    enforces its signature by column name, and most transformers return bare arrays."""
    import numpy as np
    import pandas as pd

    if isinstance(transformed, pd.DataFrame) or not isinstance(raw, pd.DataFrame):
        return transformed
    array = np.asarray(transformed)
    if array.ndim == 2 and array.shape[1] == len(raw.columns):
        return pd.DataFrame(array, columns=raw.columns, index=raw.index)
    return transformed


def load_pyfunc(local: Path, what: str) -> tuple[Any, Any | None, bool]:
    """(pyfunc model, input example or None, whether the model is fully in memory)."""
    import mlflow.pyfunc
    from mlflow.models import Model

    try:
        metadata = Model.load(str(local))
        model = mlflow.pyfunc.load_model(str(local))
        example = _input_example(metadata, local) if metadata.saved_input_example_info else None
    except Exception as exc:  # a flavor's loader can raise anything its library raises
        raise RegistryError(f"cannot load {what}: {describe_cause(exc)}") from exc
    return model, example, "sklearn" in metadata.flavors


def _input_example(metadata: Any, local: Path) -> Any:
    """The saved input example, read as saved when the model's signature does not fit it.

    With a preprocessor bound, the example holds the raw rows the preprocessor was fitted
    on while the signature describes the preprocessed features (text columns become
    numbers, for one): MLflow's reader casts the example to the signature and fails.
    """
    try:
        return metadata.load_input_example(str(local))
    except Exception:
        from copy import copy

        from mlflow.models.utils import _read_example

        unsigned = copy(metadata)
        unsigned.signature = None
        return _read_example(unsigned, str(local))
