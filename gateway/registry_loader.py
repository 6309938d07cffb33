"""Versions from the MLflow registry, through gray's registry module (the only MLflow client)."""

from __future__ import annotations

from typing import Any


class RegistryLoader:
    """Loads a registered model's versions with their bound, verified preprocessors."""

    def __init__(self, registry_uri: str | None, model_name: str) -> None:
        from gray.controller.registry import Registry, resolve_registry_uri

        self._registry = Registry(resolve_registry_uri(None, registry_uri))
        self._model_name = model_name

    def load(self, version: str) -> Any:
        return self._registry.load_serving_bundle(self._model_name, version)

    def resolve(self, reference: str) -> str:
        return str(self._registry.resolve(self._model_name, reference).version)

    def preprocessor_sha256(self, version: str) -> str | None:
        return self._registry.resolve(self._model_name, version).preprocessor_sha256
