"""A tiny in-process stand-in for the registry, for routing and admin unit tests."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from gray.controller.errors import AliasNotFoundError, ModelNotFoundError


def example_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "amount": [12.5, 3.0, 99.0],
            "count": [1, 4, 2],
            "country": ["fr", "de", "fr"],
        }
    )


@dataclass
class TinyModel:
    """Predicts 1 when amount * factor exceeds a threshold; can be told to fail or stall."""

    factor: float = 1.0
    raises: bool = False
    raise_above: float | None = None
    sleep: float = 0.0
    input_example: Any = field(default_factory=example_frame)
    calls: int = 0
    preprocessor_sha256: str | None = None

    def predict(self, frame: pd.DataFrame) -> Any:
        self.calls += 1
        if self.raises:
            raise RuntimeError("this version is broken")
        if self.raise_above is not None and (frame["amount"] > self.raise_above).any():
            raise ValueError("amount outside the training range")
        if self.sleep:
            time.sleep(self.sleep)
        if list(frame.columns) != ["amount", "count", "country"]:
            raise AssertionError(f"columns reached the model as {list(frame.columns)}")
        return ((frame["amount"] * self.factor + frame["count"]) > 10).astype(int).to_numpy()


@dataclass
class TinyLoader:
    """Versions by number, aliases by name; `gate` lets a test hold a load open."""

    models: dict[str, TinyModel]
    aliases: dict[str, str] = field(default_factory=lambda: {"champion": "1"})
    gate: threading.Event | None = None
    loads: list[str] = field(default_factory=list)
    # The preprocessor hash "the registry" records per version; a load applies it.
    preprocessor_tags: dict[str, str] = field(default_factory=dict)

    def load(self, version: str) -> TinyModel:
        self.loads.append(version)
        if self.gate is not None:
            self.gate.wait(timeout=10)
        if version not in self.models:
            raise ModelNotFoundError(f"no version {version}")
        model = self.models[version]
        model.preprocessor_sha256 = self.preprocessor_tags.get(version)
        return model

    def preprocessor_sha256(self, version: str) -> str | None:
        return self.preprocessor_tags.get(version)

    def resolve(self, reference: str) -> str:
        if reference.startswith("@"):
            try:
                return self.aliases[reference[1:]]
            except KeyError:
                raise AliasNotFoundError(f"no alias {reference}") from None
        return reference


def default_loader() -> TinyLoader:
    return TinyLoader(
        models={
            "1": TinyModel(factor=1.0),
            "2": TinyModel(factor=0.5),
            "3": TinyModel(raises=True),
            "4": TinyModel(input_example=None),
            "5": TinyModel(factor=1.0),
            "6": TinyModel(factor=1.0, raise_above=1000.0),
            "7": TinyModel(factor=0.0, sleep=0.3),
        }
    )
