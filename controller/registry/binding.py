"""Training side: bind a preprocessor to a model version by its hash, or declare it needs none.

A version's preprocessor is part of it: it is bound once, by the tags
`gray.preprocessor.sha256` and `gray.preprocessor.binding`, and never changed (a new
preprocessor means a new version). The hash tag is written last, since it is what makes
the binding count.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gray.controller.errors import ConfigError, ModelNotFoundError, PreprocessorError
from gray.controller.registry.client import RegistryClient
from gray.controller.registry.preprocessors import (
    ARTIFACT_BINDING,
    REGISTERED_MODEL_BINDING,
    default_cache_dir,
    downloads_dir,
    load_preprocessor,
    scratch_dir,
    stage_preprocessor,
    tree_sha256,
)
from gray.controller.registry.versions import (
    NO_PREPROCESSOR,
    TAG_PREPROCESSOR_BINDING,
    TAG_PREPROCESSOR_SHA256,
    TAG_PREPROCESSOR_VERSION,
    ModelVersionInfo,
    Versions,
    require_ready,
)

__all__ = [
    "Bound",
    "PreprocessorBinder",
    "bind_registered_preprocessor",
    "declare_no_preprocessor",
    "log_preprocessor",
]


@dataclass(frozen=True)
class Bound:
    """What a version was bound to: the binding tag's value and the sha256 tag's value."""

    binding: str
    sha256: str


class PreprocessorBinder:
    """Writes a version's preprocessor binding: files and tags, once per version."""

    def __init__(self, client: RegistryClient, versions: Versions, cache_dir: Path) -> None:
        self._client = client
        self._versions = versions
        self.cache_dir = cache_dir

    def bind(
        self,
        model_name: str,
        version: str,
        *,
        path: Path | None = None,
        registered_model: str | None = None,
        preprocessor_ref: str | None = None,
        artifact_path: str = "preprocessor",
    ) -> Bound:
        """Bind the file or folder at `path`, else the registered preprocessor model, else
        (neither given) declare that the version needs no separate preprocessor."""
        if path is not None:
            sha256 = self.log_preprocessor(model_name, version, path, artifact_path=artifact_path)
            return Bound(f"{ARTIFACT_BINDING}:{artifact_path.strip('/')}", sha256)
        if registered_model is not None:
            sha256 = self.bind_registered_preprocessor(
                model_name, version, registered_model, preprocessor_ref=preprocessor_ref
            )
            return Bound(f"{REGISTERED_MODEL_BINDING}:{registered_model}", sha256)
        self.declare_no_preprocessor(model_name, version)
        return Bound(NO_PREPROCESSOR, NO_PREPROCESSOR)

    def log_preprocessor(
        self,
        model_name: str,
        version: str | int,
        preprocessor: Any | str | Path,
        *,
        artifact_path: str = "preprocessor",
    ) -> str:
        """See the module function `log_preprocessor`."""
        info = self._versions.resolve(model_name, str(version))
        _refuse_rebinding(info)
        artifact_path = artifact_path.strip("/")
        if not artifact_path:
            raise ConfigError("artifact_path must name a folder inside the model version")
        location, repository = self._client.artifact_repository(model_name, info.version)
        already = self._client.call(
            f"list {artifact_path!r} in {model_name} version {info.version}",
            lambda: repository.list_artifacts(artifact_path),
        )
        if already:
            raise PreprocessorError(
                f"{model_name} version {info.version} already holds files at {artifact_path!r} "
                f"({location}) without a {TAG_PREPROCESSOR_SHA256} tag; choose another "
                "artifact_path"
            )
        staging = scratch_dir(downloads_dir(self.cache_dir), "staging")
        try:
            stage_preprocessor(preprocessor, staging)
            sha256 = tree_sha256(staging)
            self._client.call(
                f"upload the preprocessor of {model_name} version {info.version}",
                lambda: repository.log_artifacts(str(staging), artifact_path),
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self._client.set_version_tags(
            model_name,
            info.version,
            {
                TAG_PREPROCESSOR_BINDING: f"{ARTIFACT_BINDING}:{artifact_path}",
                TAG_PREPROCESSOR_SHA256: sha256,
            },
        )
        return sha256

    def declare_no_preprocessor(self, model_name: str, version: str | int) -> None:
        """See the module function `declare_no_preprocessor`."""
        info = self._versions.resolve(model_name, str(version))
        _refuse_rebinding(info)
        self._client.set_version_tags(
            model_name,
            info.version,
            {TAG_PREPROCESSOR_BINDING: NO_PREPROCESSOR, TAG_PREPROCESSOR_SHA256: NO_PREPROCESSOR},
        )

    def bind_registered_preprocessor(
        self,
        model_name: str,
        version: str | int,
        preprocessor_model_name: str,
        *,
        preprocessor_ref: str | None = None,
    ) -> str:
        """See the module function `bind_registered_preprocessor`."""
        info = self._versions.resolve(model_name, str(version))
        _refuse_rebinding(info)
        if preprocessor_ref is None:
            known = self._versions.list_versions(preprocessor_model_name)
            if not known:
                raise ModelNotFoundError(
                    f"registered model {preprocessor_model_name!r} has no versions to bind"
                )
            chosen = known[-1]
        else:
            chosen = self._versions.resolve(preprocessor_model_name, preprocessor_ref)
        require_ready(chosen, preprocessor_ref or chosen.version)
        _, repository = self._client.artifact_repository(preprocessor_model_name, chosen.version)
        work = scratch_dir(downloads_dir(self.cache_dir), "bind")
        try:
            local = Path(
                self._client.call(
                    f"download {preprocessor_model_name} version {chosen.version}",
                    lambda: repository.download_artifacts("", str(work)),
                )
            )
            load_preprocessor(local)  # refuse to bind something without .transform
            sha256 = tree_sha256(local)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self._client.set_version_tags(
            model_name,
            info.version,
            {
                TAG_PREPROCESSOR_BINDING: f"{REGISTERED_MODEL_BINDING}:{preprocessor_model_name}",
                TAG_PREPROCESSOR_VERSION: chosen.version,
                TAG_PREPROCESSOR_SHA256: sha256,
            },
        )
        return sha256


def log_preprocessor(
    model_name: str,
    version: str | int,
    preprocessor: Any | str | Path,
    *,
    registry_uri: str | None = None,
    artifact_path: str = "preprocessor",
) -> str:
    """Store `preprocessor` inside a model version and bind it by hash; returns the sha256.

    An object (anything with `.transform`) is pickled with joblib; a file or directory path
    is uploaded as is. The files land at `artifact_path` inside the version's artifacts and
    the version gets the tags `gray.preprocessor.sha256` and `gray.preprocessor.binding`.
    Without `registry_uri` the registry is MLflow's current one (`mlflow.set_tracking_uri`).
    """
    binder = _training_side_binder(registry_uri)
    return binder.log_preprocessor(model_name, version, preprocessor, artifact_path=artifact_path)


def declare_no_preprocessor(
    model_name: str, version: str | int, *, registry_uri: str | None = None
) -> None:
    """Record that a version needs no separate preprocessor (a scikit-learn Pipeline, say,
    whose preprocessing is inside the model). The gateway serves only versions whose
    preprocessor is bound or declared absent, so this is the explicit way to say "none"."""
    _training_side_binder(registry_uri).declare_no_preprocessor(model_name, version)


def bind_registered_preprocessor(
    model_name: str,
    version: str | int,
    preprocessor_model_name: str,
    *,
    registry_uri: str | None = None,
    preprocessor_ref: str | None = None,
) -> str:
    """Bind a version to a separately registered preprocessor model; returns the sha256.

    The preprocessor version is `preprocessor_ref` ("@alias" or "3"), by default the latest.
    At rollout time a plan with `preprocessor: {registered_model: NAME}` resolves NAME with
    the same alias as the model (`fraud-preprocessor@challenger`) and checks its hash.
    """
    binder = _training_side_binder(registry_uri)
    return binder.bind_registered_preprocessor(
        model_name, version, preprocessor_model_name, preprocessor_ref=preprocessor_ref
    )


def _training_side_binder(registry_uri: str | None) -> PreprocessorBinder:
    """A binder on `registry_uri`, else on MLflow's current registry (training scripts set
    it with `mlflow.set_tracking_uri`)."""
    if not registry_uri:
        import mlflow

        registry_uri = mlflow.get_registry_uri()
    client = RegistryClient(registry_uri)
    return PreprocessorBinder(client, Versions(client), default_cache_dir())


def _refuse_rebinding(info: ModelVersionInfo) -> None:
    if info.preprocessor_sha256 == NO_PREPROCESSOR:
        raise PreprocessorError(
            f"{info.name} version {info.version} was declared to need no separate "
            "preprocessor; a version's preprocessor is part of it: register a new version "
            "to bind one"
        )
    if info.preprocessor_sha256 is not None:
        raise PreprocessorError(
            f"{info.name} version {info.version} is already bound to a preprocessor "
            f"({info.preprocessor_binding}, sha256 {info.preprocessor_sha256}); a version's "
            "preprocessor is part of it: register a new version to change it"
        )
