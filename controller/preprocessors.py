"""Preprocessor files: staging, the content hash, the hash-keyed cache, loading.

A preprocessor is stored as a directory (the artifact path inside a model version, or a
registered model's own artifacts). Its hash covers every file in that directory:

    sha256 over the lines "<sha256 of file>  <relative/posix/path>\\n", sorted by path

which is what `find . -type f | sed 's|^./||' | LC_ALL=C sort | xargs sha256sum | sha256sum`
prints inside the directory, so anyone can check a binding without gray.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from gray.controller.errors import ConfigError, PreprocessorError

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
