"""Preprocessors: the files (staging, the content hash, the hash-keyed cache, loading) and
their verification against the hash tag a version was bound with.

A preprocessor is stored as a directory (the artifact path inside a model version, or a
registered model's own artifacts). Its hash covers every file in that directory:

    sha256 over the lines "<sha256 of file>  <relative/posix/path>\\n", sorted by path

which is what `find . -type f | sed 's|^./||' | LC_ALL=C sort | xargs sha256sum | sha256sum`
prints inside the directory, so anyone can check a binding without gray. Each version's
preprocessor is checked before any traffic moves (`PreprocessorVerifier.verify`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gray.controller.errors import (
    AliasNotFoundError,
    ConfigError,
    ModelNotFoundError,
    PreprocessorError,
)
from gray.controller.registry.client import RegistryClient
from gray.controller.registry.versions import (
    NO_PREPROCESSOR,
    TAG_PREPROCESSOR_BINDING,
    TAG_PREPROCESSOR_SHA256,
    TAG_PREPROCESSOR_VERSION,
    ModelVersionInfo,
    Versions,
    require_ready,
)

if TYPE_CHECKING:
    from gray.controller.plan.models import PreprocessorBinding

__all__ = [
    "PreprocessorVerifier",
    "VerifiedPreprocessor",
    "binding_label",
    "default_cache_dir",
    "load_preprocessor",
    "tree_sha256",
]

CACHE_DIR_ENV = "GRAY_CACHE_DIR"
ARTIFACT_BINDING = "artifact"
REGISTERED_MODEL_BINDING = "registered_model"

PICKLE_FILE_NAME = "preprocessor.joblib"
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
MLMODEL_FILE = "MLmodel"


def tree_sha256(root: Path) -> str:
    """The content hash of every file under `root` (see the module docstring)."""
    lines = [f"{file_sha256(path)}  {relative}\n" for relative, path in _files(root)]
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def has_files(root: Path) -> bool:
    return root.is_dir() and any(True for _ in _files(root))


def _files(root: Path) -> list[tuple[str, Path]]:
    found = [
        (path.relative_to(root).as_posix(), path) for path in root.rglob("*") if path.is_file()
    ]
    return sorted(found)


def stage_preprocessor(preprocessor: Any, destination: Path) -> None:
    """Write `preprocessor` into the empty directory `destination`.

    An object is pickled with joblib (it must have `.transform`); a file is copied in; a
    directory's contents are copied in.
    """
    destination.mkdir(parents=True, exist_ok=True)
    if isinstance(preprocessor, str | os.PathLike):
        source = Path(preprocessor)
        if source.is_dir():
            shutil.copytree(source, destination, dirs_exist_ok=True)
            if not has_files(destination):
                raise ConfigError(f"preprocessor directory {source} holds no files")
        elif source.is_file():
            shutil.copy2(source, destination / source.name)
        else:
            raise ConfigError(f"preprocessor path {source} does not exist")
        return
    if not callable(getattr(preprocessor, "transform", None)):
        raise ConfigError(
            f"a preprocessor object needs a .transform method; got {type(preprocessor).__name__}"
        )
    import joblib

    joblib.dump(preprocessor, destination / PICKLE_FILE_NAME)


def load_preprocessor(directory: Path) -> Any:
    """Load the preprocessor stored in `directory`: an MLflow model or one pickle file."""
    if (directory / MLMODEL_FILE).is_file():
        preprocessor = _load_mlflow_model(directory)
    else:
        pickles = [path for _, path in _files(directory) if path.suffix in PICKLE_SUFFIXES]
        if len(pickles) != 1:
            names = ", ".join(rel for rel, _ in _files(directory)) or "nothing"
            raise PreprocessorError(
                f"preprocessor at {directory} must hold one {'/'.join(PICKLE_SUFFIXES)} file "
                f"or an MLflow model; it holds {names}"
            )
        import joblib

        try:
            preprocessor = joblib.load(pickles[0])
        except Exception as exc:  # unpickling can raise anything the pickled code raises
            raise PreprocessorError(f"cannot load preprocessor {pickles[0]}: {exc}") from exc
    if not callable(getattr(preprocessor, "transform", None)):
        raise PreprocessorError(
            f"preprocessor at {directory} ({type(preprocessor).__name__}) has no .transform"
        )
    return preprocessor


def _load_mlflow_model(directory: Path) -> Any:
    """A registered preprocessor: its scikit-learn object when it has one, else its pyfunc."""
    from mlflow.models import Model

    try:
        flavors = Model.load(str(directory)).flavors
        if "sklearn" in flavors:
            import mlflow.sklearn

            return mlflow.sklearn.load_model(str(directory))
        import mlflow.pyfunc

        return PyfuncTransformer(mlflow.pyfunc.load_model(str(directory)))
    except PreprocessorError:
        raise
    except Exception as exc:  # model loading can raise anything the flavor raises
        raise PreprocessorError(f"cannot load preprocessor model at {directory}: {exc}") from exc


class PyfuncTransformer:
    """A pyfunc preprocessor model seen as a transformer: `transform` is its `predict`."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def transform(self, frame: Any) -> Any:
        return self.model.predict(frame)


def store_in_cache(downloaded: Path, cache_root: Path, sha256: str) -> Path:
    """Move a verified download to `cache_root/<sha256>` and return that directory.

    The rename is atomic, so a concurrent process either finds the complete directory or
    places its own identical one; the loser's copy is removed.
    """
    target = cache_root / sha256
    if target.is_dir():
        shutil.rmtree(downloaded, ignore_errors=True)
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    try:
        downloaded.rename(target)
    except OSError:
        shutil.rmtree(downloaded, ignore_errors=True)
        if not target.is_dir():
            raise
    return target


def scratch_dir(root: Path, prefix: str) -> Path:
    """A new empty directory under `root`, on the same file system as the cache."""
    path = root / f"{prefix}-{uuid.uuid4().hex}"
    path.mkdir(parents=True)
    return path


def default_cache_dir() -> Path:
    """Where verified preprocessors and downloads go: $GRAY_CACHE_DIR, else the XDG cache."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gray"


def downloads_dir(cache_dir: Path) -> Path:
    """The scratch area for downloads, on the cache's file system so that a verified
    download moves into the cache with one rename."""
    downloads = cache_dir / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    return downloads


def binding_label(binding: PreprocessorBinding) -> str:
    """The tag form of a plan's binding: `artifact:<path>` or `registered_model:<name>`."""
    if binding.artifact and binding.registered_model:
        raise ConfigError(
            "a preprocessor binding names an artifact or a registered model, not both"
        )
    if binding.artifact:
        return f"{ARTIFACT_BINDING}:{binding.artifact}"
    if binding.registered_model:
        return f"{REGISTERED_MODEL_BINDING}:{binding.registered_model}"
    raise ConfigError("a preprocessor binding needs `artifact` or `registered_model`")


def _split_binding(label: str) -> tuple[str, str]:
    kind, _, target = label.partition(":")
    if kind not in (ARTIFACT_BINDING, REGISTERED_MODEL_BINDING) or not target:
        raise PreprocessorError(
            f"unreadable preprocessor binding {label!r}: expected 'artifact:<path>' or "
            "'registered_model:<name>'"
        )
    return kind, target


@dataclass(frozen=True)
class VerifiedPreprocessor:
    """A preprocessor whose files hash to the version's tag, stored in the cache by hash."""

    version: str
    sha256: str
    path: Path
    binding: str

    def load(self) -> Any:
        return load_preprocessor(self.path)


class PreprocessorVerifier:
    """Fetches a version's preprocessor into the cache and checks it against the tag."""

    def __init__(self, client: RegistryClient, versions: Versions, cache_dir: Path) -> None:
        self._client = client
        self._versions = versions
        self.cache_dir = cache_dir

    def verify(
        self,
        info: ModelVersionInfo,
        binding: PreprocessorBinding | None,
        ref: str | None = None,
    ) -> VerifiedPreprocessor | None:
        """The version's preprocessor, fetched and checked; None when it has none.

        `binding` is the plan's (None: use the version's own tag); `ref` is the plan's ref
        for that side, so a registered-model binding resolves with the same alias.
        """
        label = self._checked_label(info, binding)
        if label is None:
            return None
        expected = str(info.preprocessor_sha256)
        kind, target = _split_binding(label)
        work = scratch_dir(downloads_dir(self.cache_dir), "preprocessor")
        try:
            if kind == ARTIFACT_BINDING:
                fetched = self._fetch_artifact(info, target, expected, work)
            else:
                fetched = self._fetch_registered(info, target, ref, expected, work)
            found = tree_sha256(fetched)
            if found != expected:
                raise PreprocessorError(
                    f"{info.name} version {info.version}: preprocessor hash mismatch ({label}): "
                    f"expected sha256 {expected}, found {found}; the preprocessor changed after "
                    "the version was bound. Register a new version with the right preprocessor"
                )
            path = store_in_cache(fetched, self.cache_dir / "preprocessors", found)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return VerifiedPreprocessor(version=info.version, sha256=found, path=path, binding=label)

    def _checked_label(
        self, info: ModelVersionInfo, binding: PreprocessorBinding | None
    ) -> str | None:
        """Where the preprocessor lives, once the plan and the version's tags agree; None
        when the version has no preprocessor to check."""
        label = binding_label(binding) if binding is not None else info.preprocessor_binding
        expected = info.preprocessor_sha256
        where = f"{info.name} version {info.version}"
        if expected == NO_PREPROCESSOR:
            if binding is not None:
                raise PreprocessorError(
                    f"the plan binds the preprocessor as {label} but {where} was declared to "
                    "need none (gray registry bind --none); drop model.preprocessor from the "
                    "plan or register a version with its preprocessor"
                )
            return None
        if label is None and expected is None:
            return None
        if expected is None:
            raise PreprocessorError(
                f"{where} has no {TAG_PREPROCESSOR_SHA256} tag, so its preprocessor ({label}) "
                f"cannot be verified; expected sha256: none recorded, found: not checked. Bind "
                f"it at training time: gray registry bind {info.name} {info.version} PATH"
            )
        if label is None:
            raise PreprocessorError(
                f"{where} has a preprocessor hash ({expected}) but no {TAG_PREPROCESSOR_BINDING} "
                "tag saying where the preprocessor lives; add preprocessor: {artifact: ...} to "
                "the plan"
            )
        if info.preprocessor_binding is not None and info.preprocessor_binding != label:
            raise PreprocessorError(
                f"the plan binds the preprocessor as {label} but {where} was bound as "
                f"{info.preprocessor_binding}; expected sha256 {expected}, found: not checked"
            )
        return label

    def _fetch_artifact(
        self, info: ModelVersionInfo, artifact_path: str, expected: str, work: Path
    ) -> Path:
        location, repository = self._client.artifact_repository(info.name, info.version)
        listed = self._client.call(
            f"list {artifact_path!r} in {info.name} version {info.version}",
            lambda: repository.list_artifacts(artifact_path),
        )
        if not listed:
            raise PreprocessorError(
                f"{info.name} version {info.version}: preprocessor artifact {artifact_path!r} is "
                f"missing from {location}; expected sha256 {expected}, found no file"
            )
        target = work / "fetched"
        target.mkdir()
        downloaded = self._client.call(
            f"download the preprocessor of {info.name} version {info.version}",
            lambda: repository.download_artifacts(artifact_path, str(target)),
        )
        path = Path(downloaded)
        if path.is_file():  # the artifact path named a single file
            return path.parent
        return path

    def _fetch_registered(
        self,
        info: ModelVersionInfo,
        preprocessor_model: str,
        ref: str | None,
        expected: str,
        work: Path,
    ) -> Path:
        where = f"{info.name} version {info.version}"
        if ref is not None and ref.strip().startswith("@"):
            lookup = ref.strip()
        else:
            recorded = info.tags.get(TAG_PREPROCESSOR_VERSION)
            if recorded is None:
                raise PreprocessorError(
                    f"{where} is bound to registered model {preprocessor_model!r} but records no "
                    f"{TAG_PREPROCESSOR_VERSION} tag, and the plan names it by version, not "
                    f"alias; expected sha256 {expected}, found nothing to check"
                )
            lookup = recorded
        try:
            preprocessor = self._versions.resolve(preprocessor_model, lookup)
        except (ModelNotFoundError, AliasNotFoundError) as exc:
            suffix = lookup if lookup.startswith("@") else f"/{lookup}"
            raise PreprocessorError(
                f"{where}: its preprocessor {preprocessor_model}{suffix} cannot be "
                f"resolved ({exc.message}); expected sha256 {expected}, found no file"
            ) from None
        require_ready(preprocessor, lookup)
        location, repository = self._client.artifact_repository(
            preprocessor_model, preprocessor.version
        )
        target = work / "fetched"
        target.mkdir()
        downloaded = self._client.call(
            f"download {preprocessor_model} version {preprocessor.version}",
            lambda: repository.download_artifacts("", str(target)),
        )
        path = Path(downloaded)
        if not has_files(path):
            raise PreprocessorError(
                f"{where}: preprocessor {preprocessor_model} version {preprocessor.version} has "
                f"no files at {location}; expected sha256 {expected}, found no file"
            )
        return path
