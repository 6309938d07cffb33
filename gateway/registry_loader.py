"""Versions from the MLflow registry, through gray's registry package (the only MLflow client).

A version is served only with its preprocessor verified by hash against the version's tag,
or declared absent; a version without the tag is refused.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from gray.controller.errors import PreprocessorError
from gray.controller.registry.client import RegistryClient, resolve_registry_uri
from gray.controller.registry.preprocessors import (
    PreprocessorVerifier,
    default_cache_dir,
    downloads_dir,
    scratch_dir,
)
from gray.controller.registry.versions import (
    NO_PREPROCESSOR,
    TAG_PREPROCESSOR_SHA256,
    Versions,
    require_ready,
)
from gray.gateway.serving_bundle import ServingBundle, load_pyfunc


class RegistryLoader:
    """Loads a registered model's versions with their bound, verified preprocessors."""

    def __init__(
        self, registry_uri: str | None, model_name: str, *, cache_dir: Path | None = None
    ) -> None:
        self._client = RegistryClient(resolve_registry_uri(None, registry_uri))
        self._versions = Versions(self._client)
        self._cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
        self._verifier = PreprocessorVerifier(self._client, self._versions, self._cache_dir)
        self._model_name = model_name

    def load(self, version: str) -> ServingBundle:
        """Download, verify and load one version for serving (model, preprocessor, example)."""
        name = self._model_name
        info = self._versions.resolve(name, str(version))
        require_ready(info, str(version))
        verified = self._verifier.verify(info, None)
        if verified is None and info.preprocessor_sha256 != NO_PREPROCESSOR:
            raise PreprocessorError(
                f"{name} version {info.version} is not servable: it has no "
                f"{TAG_PREPROCESSOR_SHA256} tag, so its preprocessor is unverified. Bind it "
                f"with `gray registry bind {name} {info.version} PATH` (or log_preprocessor at "
                "training time), or declare that it needs none with `gray registry bind "
                f"{name} {info.version} --none`; the gateway loads it once asked again"
            )
        preprocessor = verified.load() if verified is not None else None
        _, repository = self._client.artifact_repository(name, info.version)
        work = scratch_dir(downloads_dir(self._cache_dir), "model")
        keep = False
        try:
            local = Path(
                self._client.call(
                    f"download {name} version {info.version}",
                    lambda: repository.download_artifacts("", str(work)),
                )
            )
            model, example, in_memory = load_pyfunc(local, f"{name} version {info.version}")
            # Flavors other than scikit-learn may read their files lazily: keep those.
            keep = not in_memory
        finally:
            if not keep:
                shutil.rmtree(work, ignore_errors=True)
        return ServingBundle(
            info=info, model=model, preprocessor=preprocessor, input_example=example
        )

    def resolve(self, reference: str) -> str:
        return str(self._versions.resolve(self._model_name, reference).version)

    def preprocessor_sha256(self, version: str) -> str | None:
        return self._versions.resolve(self._model_name, version).preprocessor_sha256
