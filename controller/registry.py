"""The only module that talks to MLflow: pin versions, verify preprocessors, move aliases.

A rollout pins its two versions once (`Registry.pin`) and keeps testing them even when an
alias moves underneath it (`Registry.alias_drift` reports that). Each version's preprocessor
is bound by a sha256 tag written at training time (`log_preprocessor`) and checked before any
traffic moves (`Registry.verify_preprocessor`). Alias moves re-read the alias first and are
recorded in the registry itself (`gray.controller.alias_history`).

mlflow is imported inside functions: importing this module stays cheap.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from gray.controller import alias_history, preprocessors
from gray.controller.alias_history import AliasMove, current_actor, now_iso
from gray.controller.errors import (
    AliasConflictError,
    AliasNotFoundError,
    ConfigError,
    GrayError,
    ModelNotFoundError,
    PreprocessorError,
    RegistryError,
    SameVersionError,
    VersionNotReadyError,
)

if TYPE_CHECKING:
    from gray.controller.plan.models import ModelSpec, PreprocessorBinding, PromoteSpec

__all__ = [
    "DEFAULT_REGISTRY_URI",
    "AliasMove",
    "ModelVersionInfo",
    "PinnedPair",
    "Registry",
    "ServingBundle",
    "VerifiedPreprocessor",
    "bind_registered_preprocessor",
    "log_preprocessor",
    "resolve_registry_uri",
]

DEFAULT_REGISTRY_URI = "sqlite:///mlflow.db"
CACHE_DIR_ENV = "GRAY_CACHE_DIR"

TAG_PREPROCESSOR_SHA256 = "gray.preprocessor.sha256"
# Both tags hold this for a version declared to need no separate preprocessor (its
# preprocessing is inside the model): a recorded decision, unlike a missing tag.
NO_PREPROCESSOR = "none"
TAG_PREPROCESSOR_BINDING = "gray.preprocessor.binding"
TAG_PREPROCESSOR_VERSION = "gray.preprocessor.version"
TAG_ROLLOUT_ID = "gray.rollout_id"
TAG_PROMOTED_AT = "gray.promoted_at"
TAG_REPLACED_AT = "gray.replaced_at"
TAG_ROLLED_BACK_AT = "gray.rolled_back_at"

ARTIFACT_BINDING = "artifact"
REGISTERED_MODEL_BINDING = "registered_model"
READY = "READY"

# MLflow's own HTTP client retries 7 times with exponential backoff and waits 120 s per
# request by default, so an unreachable server takes minutes to fail. gray retries itself
# (bounded, below) and tells MLflow not to; users who set these variables keep their values.
MLFLOW_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 4.0
NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"})
TRANSIENT_CODES = frozenset(
    {
        "INTERNAL_ERROR",
        "TEMPORARILY_UNAVAILABLE",
        "REQUEST_LIMIT_EXCEEDED",
        "DEADLINE_EXCEEDED",
        "IO_ERROR",
        "ABORTED",
    }
)
_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")

T = TypeVar("T")


def resolve_registry_uri(plan_uri: str | None, cli_uri: str | None) -> str:
    """The registry to use: the plan's, else $MLFLOW_TRACKING_URI, else `sqlite:///mlflow.db`;
    an explicit `--registry-uri` overrides them all.

    The flag wins over the plan because plans usually carry a default
    (`${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db}`): someone typing `--registry-uri`, say
    for `gray rollback` from another machine, means that registry, and must neither be
    ignored nor refused.
    """
    return cli_uri or plan_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_REGISTRY_URI


def default_cache_dir() -> Path:
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gray"


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered model version as gray sees it, preprocessor binding included."""

    name: str
    version: str
    model_uri: str
    source: str
    run_id: str | None
    status: str
    aliases: tuple[str, ...]
    tags: dict[str, str] = field(default_factory=dict)
    preprocessor_sha256: str | None = None
    preprocessor_binding: str | None = None

    @property
    def last_rollout_id(self) -> str | None:
        return self.tags.get(TAG_ROLLOUT_ID)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["aliases"] = list(self.aliases)
        data["tags"] = dict(self.tags)
        return data


@dataclass(frozen=True)
class PinnedPair:
    """The two versions a rollout compares, resolved once at its start."""

    baseline: ModelVersionInfo
    candidate: ModelVersionInfo


@dataclass(frozen=True)
class VerifiedPreprocessor:
    """A preprocessor whose files hash to the version's tag, stored in the cache by hash."""

    version: str
    sha256: str
    path: Path
    binding: str

    def load(self) -> Any:
        return preprocessors.load_preprocessor(self.path)


@dataclass(frozen=True)
class ServingBundle:
    """What a serving endpoint needs for one version: model, verified preprocessor, example."""

    info: ModelVersionInfo
    model: Any
    preprocessor: Any | None
    input_example: Any | None

    @property
    def preprocessor_sha256(self) -> str | None:
        """The hash of the preprocessor applied; `load_serving_bundle` checked it against
        the version's tag."""
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


def _parse_ref(ref: str) -> tuple[str | None, str | None]:
    """(alias, None) for "@alias", (None, version) for "3"."""
    text = str(ref).strip()
    if text.startswith("@") and len(text) > 1:
        return text[1:], None
    if text.isdigit() and int(text) >= 1:
        return None, str(int(text))
    raise ConfigError(f"model reference {ref!r}: use '@alias' (e.g. @champion) or a version number")


def bound_mlflow_http_retries() -> None:
    for name, value in MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


class Registry:
    """An MLflow model registry, reached through bounded retries and gray's error tree."""

    def __init__(self, uri: str, *, cache_dir: Path | None = None, retries: int = 3) -> None:
        if retries < 0:
            raise ConfigError(f"retries must be 0 or more, got {retries}")
        self.uri = uri
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._retries = retries
        self._client_instance: Any = None
        self._client_lock = threading.Lock()
        bound_mlflow_http_retries()

    # -- plumbing -------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The underlying `mlflow.MlflowClient` (HTTP retries bounded), for gray's other
        MLflow writers such as the journal; wrap calls in `call` for retries and errors."""
        return self._client

    def call(
        self,
        what: str,
        action: Callable[[], T],
        *,
        missing: Callable[[], GrayError] | None = None,
    ) -> T:
        """Run `action` against MLflow with gray's bounded retries and error mapping."""
        return self._call(what, action, missing=missing)

    def experiment_id(self, name: str) -> str:
        """The id of experiment `name`, created on first use. With a sqlite registry its
        artifacts go beside the database file, not to ./mlruns of whatever folder gray runs in."""
        found = self.call(
            f"read experiment {name!r}", lambda: self._client.get_experiment_by_name(name)
        )
        if found is not None:
            return str(found.experiment_id)
        location = None
        if self.uri.startswith("sqlite:///"):
            database = Path(self.uri.removeprefix("sqlite:///").split("?", 1)[0])
            location = (database.parent / "artifacts").resolve().as_uri()
        try:
            return str(self._client.create_experiment(name, artifact_location=location))
        except Exception:
            # Another writer created it between our two calls.
            found = self.call(
                f"read experiment {name!r}", lambda: self._client.get_experiment_by_name(name)
            )
            if found is None:
                raise
            return str(found.experiment_id)

    @property
    def _client(self) -> Any:
        with self._client_lock:
            if self._client_instance is None:
                self._check_local_store()
                from mlflow import MlflowClient

                self._client_instance = self._call(
                    "open the registry",
                    lambda: MlflowClient(tracking_uri=self.uri, registry_uri=self.uri),
                )
            return self._client_instance

    def _check_local_store(self) -> None:
        """Refuse a sqlite path that does not exist: MLflow would create an empty registry."""
        if not self.uri.startswith("sqlite:///"):
            return
        path = Path(self.uri.removeprefix("sqlite:///").split("?", 1)[0])
        if not path.is_file():
            raise ConfigError(
                f"no MLflow database at {path} (registry URI {self.uri}); pass --registry-uri "
                "or set MLFLOW_TRACKING_URI"
            )

    def _call(
        self,
        what: str,
        action: Callable[[], T],
        *,
        missing: Callable[[], GrayError] | None = None,
    ) -> T:
        """Run one MLflow call; retry transient failures with bounded backoff.

        Everything MLflow raises leaves as a GrayError naming the registry and the cause.
        """
        import sqlalchemy.exc
        from mlflow.exceptions import MlflowException

        delay = BACKOFF_FIRST_SECONDS
        for attempt in itertools.count():
            try:
                return action()
            except MlflowException as exc:
                if missing is not None and exc.error_code in NOT_FOUND_CODES:
                    raise missing() from None
                failure: Exception = exc
                transient = exc.error_code in TRANSIENT_CODES
            except (ConnectionError, TimeoutError, sqlalchemy.exc.OperationalError) as exc:
                failure, transient = exc, True
            except OSError as exc:
                import requests

                failure = exc
                transient = isinstance(exc, requests.RequestException)
            except GrayError:
                raise
            except Exception as exc:  # the boundary: whatever else MLflow raises, one error tree
                failure, transient = exc, False
            if not transient or attempt >= self._retries:
                tries = f" after {attempt + 1} attempts" if attempt else ""
                raise RegistryError(
                    f"MLflow registry {self.uri}: {what} failed{tries}: {_cause(failure)}"
                ) from failure
            time.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_SECONDS)
        raise AssertionError("unreachable")  # pragma: no cover

    def _registered_model(self, name: str) -> Any:
        return self._call(
            f"read registered model {name!r}",
            lambda: self._client.get_registered_model(name),
            missing=lambda: ModelNotFoundError(
                f"no registered model {name!r} in the registry {self.uri}"
            ),
        )

    def _model_version(self, name: str, version: str) -> Any:
        return self._call(
            f"read {name} version {version}",
            lambda: self._client.get_model_version(name, version),
            missing=lambda: ModelNotFoundError(
                f"registered model {name!r} has no version {version} in {self.uri}"
            ),
        )

    def _artifact_repository(self, name: str, version: str) -> tuple[str, Any]:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        location = self._call(
            f"locate the artifacts of {name} version {version}",
            lambda: self._client.get_model_version_download_uri(name, version),
            missing=lambda: ModelNotFoundError(
                f"registered model {name!r} has no version {version}"
            ),
        )
        repository = get_artifact_repository(location, tracking_uri=self.uri, registry_uri=self.uri)
        return location, repository

    def _set_version_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self._call(
                f"tag {name} version {version}",
                lambda key=key, value=value: self._client.set_model_version_tag(
                    name, version, key, value
                ),
            )

    # -- resolve and pin ------------------------------------------------------------------

    def resolve(self, name: str, ref: str) -> ModelVersionInfo:
        """The version that `ref` ("@alias" or "3") names now."""
        alias, version = _parse_ref(ref)
        if alias is not None:
            aliases = dict(self._registered_model(name).aliases or {})
            if alias not in aliases:
                known = ", ".join(f"@{a} -> {v}" for a, v in sorted(aliases.items())) or "none"
                raise AliasNotFoundError(
                    f"registered model {name!r} has no alias @{alias} (aliases: {known}); set it "
                    f"in MLflow or use a version number"
                )
            version = str(aliases[alias])
        assert version is not None
        return _version_info(self._model_version(name, version))

    def pin(self, model: ModelSpec) -> PinnedPair:
        """Resolve the plan's baseline and candidate once; both READY and distinct."""
        baseline = self.resolve(model.name, model.baseline)
        candidate = self.resolve(model.name, model.candidate)
        for ref, info in ((model.baseline, baseline), (model.candidate, candidate)):
            _require_ready(info, ref)
        if baseline.version == candidate.version:
            raise SameVersionError(
                f"baseline {model.baseline} and candidate {model.candidate} both resolve to "
                f"{model.name} version {baseline.version}; point the candidate at the new "
                "version (or the baseline at the old one)"
            )
        return PinnedPair(baseline=baseline, candidate=candidate)

    def alias_drift(self, model: ModelSpec, pinned: PinnedPair) -> list[str]:
        """Messages for each plan alias that no longer points at the pinned version."""
        return self.drift_from(model, pinned.baseline.version, pinned.candidate.version)

    def drift_from(self, model: ModelSpec, baseline: str, candidate: str) -> list[str]:
        """`alias_drift` for versions pinned earlier (a running rollout keeps only numbers)."""
        sides = (
            ("baseline", model.baseline, str(baseline)),
            ("candidate", model.candidate, str(candidate)),
        )
        if not any(ref.startswith("@") for _, ref, _ in sides):
            return []
        aliases = dict(self._registered_model(model.name).aliases or {})
        messages: list[str] = []
        for side, ref, pinned_version in sides:
            if not ref.startswith("@"):
                continue
            now = aliases.get(ref[1:])
            if now is None:
                messages.append(
                    f"alias {ref} of {model.name} was removed after the rollout pinned version "
                    f"{pinned_version}; the rollout keeps testing version {pinned_version} as "
                    f"{side}"
                )
            elif str(now) != pinned_version:
                messages.append(
                    f"alias {ref} of {model.name} moved from version {pinned_version} to {now} "
                    f"after the rollout started; the rollout keeps testing version "
                    f"{pinned_version} as {side}"
                )
        return messages

    def versions(self, name: str) -> list[ModelVersionInfo]:
        """Every version of `name`, oldest first, with its aliases."""
        registered = self._registered_model(name)
        aliases_of: dict[str, list[str]] = {}
        for alias, version in (registered.aliases or {}).items():
            aliases_of.setdefault(str(version), []).append(alias)
        escaped = name.replace("'", "\\'")
        found: list[Any] = []
        token: str | None = None
        while True:
            page = self._call(
                f"list the versions of {name!r}",
                lambda token=token: self._client.search_model_versions(
                    filter_string=f"name = '{escaped}'", page_token=token
                ),
            )
            found.extend(page)
            token = page.token
            if not token:
                break
        infos = [
            _version_info(mv, aliases=tuple(sorted(aliases_of.get(str(mv.version), []))))
            for mv in found
        ]
        return sorted(infos, key=lambda info: int(info.version))

    # -- preprocessors --------------------------------------------------------------------

    def verify_preprocessor(
        self,
        info: ModelVersionInfo,
        binding: PreprocessorBinding | None,
        ref: str | None = None,
    ) -> VerifiedPreprocessor | None:
        """Fetch the version's preprocessor into the cache and check it against the tag.

        `binding` is the plan's (None: use the version's own tag); `ref` is the plan's ref
        for that side, so a registered-model binding resolves with the same alias.
        """
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
        kind, target = _split_binding(label)
        downloads = self.cache_dir / "downloads"
        downloads.mkdir(parents=True, exist_ok=True)
        work = preprocessors.scratch_dir(downloads, "preprocessor")
        try:
            if kind == ARTIFACT_BINDING:
                fetched = self._fetch_artifact_preprocessor(info, target, expected, work)
            else:
                fetched = self._fetch_registered_preprocessor(info, target, ref, expected, work)
            found = preprocessors.tree_sha256(fetched)
            if found != expected:
                raise PreprocessorError(
                    f"{where}: preprocessor hash mismatch ({label}): expected sha256 {expected}, "
                    f"found {found}; the preprocessor changed after the version was bound. "
                    "Register a new version with the right preprocessor"
                )
            path = preprocessors.store_in_cache(fetched, self.cache_dir / "preprocessors", found)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return VerifiedPreprocessor(version=info.version, sha256=found, path=path, binding=label)

    def _fetch_artifact_preprocessor(
        self, info: ModelVersionInfo, artifact_path: str, expected: str, work: Path
    ) -> Path:
        location, repository = self._artifact_repository(info.name, info.version)
        listed = self._call(
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
        downloaded = self._call(
            f"download the preprocessor of {info.name} version {info.version}",
            lambda: repository.download_artifacts(artifact_path, str(target)),
        )
        path = Path(downloaded)
        if path.is_file():  # the artifact path named a single file
            return path.parent
        return path

    def _fetch_registered_preprocessor(
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
            preprocessor = self.resolve(preprocessor_model, lookup)
        except (ModelNotFoundError, AliasNotFoundError) as exc:
            raise PreprocessorError(
                f"{where}: its preprocessor {preprocessor_model}{_ref_suffix(lookup)} cannot be "
                f"resolved ({exc.message}); expected sha256 {expected}, found no file"
            ) from None
        _require_ready(preprocessor, lookup)
        location, repository = self._artifact_repository(preprocessor_model, preprocessor.version)
        target = work / "fetched"
        target.mkdir()
        downloaded = self._call(
            f"download {preprocessor_model} version {preprocessor.version}",
            lambda: repository.download_artifacts("", str(target)),
        )
        path = Path(downloaded)
        if not preprocessors.has_files(path):
            raise PreprocessorError(
                f"{where}: preprocessor {preprocessor_model} version {preprocessor.version} has "
                f"no files at {location}; expected sha256 {expected}, found no file"
            )
        return path

    def load_serving_bundle(self, name: str, version: str) -> ServingBundle:
        """Download, verify and load one version for serving (model, preprocessor, example).

        A version without a preprocessor hash tag is refused: serving it would apply no
        preprocessor, or one nobody checked.
        """
        info = self.resolve(name, str(version))
        _require_ready(info, str(version))
        verified = self.verify_preprocessor(info, None)
        if verified is None and info.preprocessor_sha256 != NO_PREPROCESSOR:
            raise PreprocessorError(
                f"{name} version {info.version} is not servable: it has no "
                f"{TAG_PREPROCESSOR_SHA256} tag, so its preprocessor is unverified. Bind it "
                f"with `gray registry bind {name} {info.version} PATH` (or log_preprocessor at "
                "training time), or declare that it needs none with `gray registry bind "
                f"{name} {info.version} --none`; the gateway loads it once asked again"
            )
        preprocessor = verified.load() if verified is not None else None
        _, repository = self._artifact_repository(name, info.version)
        downloads = self.cache_dir / "downloads"
        downloads.mkdir(parents=True, exist_ok=True)
        work = preprocessors.scratch_dir(downloads, "model")
        keep = False
        try:
            local = Path(
                self._call(
                    f"download {name} version {info.version}",
                    lambda: repository.download_artifacts("", str(work)),
                )
            )
            model, example, in_memory = _load_pyfunc(local, f"{name} version {info.version}")
            # Flavors other than scikit-learn may read their files lazily: keep those.
            keep = not in_memory
        finally:
            if not keep:
                shutil.rmtree(work, ignore_errors=True)
        return ServingBundle(
            info=info, model=model, preprocessor=preprocessor, input_example=example
        )

    # -- aliases --------------------------------------------------------------------------

    def set_alias(
        self,
        name: str,
        alias: str,
        version: str,
        *,
        expected_from: str | None,
        rollout_id: str | None,
        reason: str,
    ) -> AliasMove:
        """Point `alias` at `version` if it still points at `expected_from`; record the move.

        MLflow has no compare-and-swap: re-reading the alias right before the write is the
        closest it allows, and narrows the race to the two calls.
        """
        version = str(version)
        current = self._alias_target(name, alias)
        if current != expected_from:
            raise AliasConflictError(
                f"alias @{alias} of {name} points at {_describe(current)}, not "
                f"{_describe(expected_from)} as expected: someone moved it. Nothing was changed; "
                f"check `gray registry show {name}` and retry"
            )
        self._model_version(name, version)
        self._call(
            f"set alias @{alias} of {name} to version {version}",
            lambda: self._client.set_registered_model_alias(name, alias, version),
        )
        move = AliasMove(
            model=name,
            alias=alias,
            from_version=current,
            to_version=version,
            at=now_iso(),
            actor=current_actor(),
            rollout_id=rollout_id,
            reason=reason,
        )
        self._record(move)
        return move

    def alias_points_at(self, name: str, alias: str, version: str) -> bool:
        return self._alias_target(name, alias) == str(version)

    def _alias_target(self, name: str, alias: str) -> str | None:
        target = (self._registered_model(name).aliases or {}).get(alias)
        return None if target is None else str(target)

    def _record(self, move: AliasMove) -> None:
        """Append `move` to the history; on a sequence clash with another writer, move on."""
        value = alias_history.encode(move)
        tags = dict(self._registered_model(move.model).tags or {})
        sequence = alias_history.next_sequence(tags)
        for _ in range(5):
            key = alias_history.tag_key(sequence)
            self._call(
                f"record the move of @{move.alias} on {move.model}",
                lambda key=key: self._client.set_registered_model_tag(move.model, key, value),
            )
            written = (self._registered_model(move.model).tags or {}).get(key)
            if written == value:
                return
            sequence = alias_history.next_sequence(dict(self._registered_model(move.model).tags))
        raise RegistryError(
            f"could not record the move of @{move.alias} on {move.model} in the history: other "
            "writers kept taking the same sequence number"
        )

    def promote(
        self,
        name: str,
        candidate_version: str,
        promote: PromoteSpec,
        rollout_id: str,
        *,
        expect_current: str | None = None,
    ) -> list[AliasMove]:
        """Move `promote.alias` to the candidate, keeping the replaced version as
        `promote.keep_previous_as`. With `expect_current`, refuse unless the alias still
        points at that version (the baseline the rollout pinned)."""
        candidate_version = str(candidate_version)
        current = self._alias_target(name, promote.alias)
        if expect_current is not None and current != str(expect_current):
            raise AliasConflictError(
                f"alias @{promote.alias} of {name} points at {_describe(current)}, not at the "
                f"pinned baseline version {expect_current}: it moved during the rollout. Nothing "
                "was changed; promote by hand after checking `gray registry show`"
            )
        stamp = now_iso()
        self._model_version(name, candidate_version)
        moves: list[AliasMove] = []
        if current != candidate_version:
            kept = (
                self._alias_target(name, promote.keep_previous_as)
                if promote.keep_previous_as
                else None
            )
            if promote.keep_previous_as and current is not None and kept != current:
                # Written first: if the next step fails, the way back is already recorded.
                moves.append(
                    self.set_alias(
                        name,
                        promote.keep_previous_as,
                        current,
                        expected_from=kept,
                        rollout_id=rollout_id,
                        reason=f"rollout {rollout_id}: keep the replaced @{promote.alias}",
                    )
                )
            moves.append(
                self.set_alias(
                    name,
                    promote.alias,
                    candidate_version,
                    expected_from=current,
                    rollout_id=rollout_id,
                    reason=f"rollout {rollout_id} promoted version {candidate_version}",
                )
            )
            if current is not None:
                self._set_version_tags(
                    name, current, {TAG_ROLLOUT_ID: rollout_id, TAG_REPLACED_AT: stamp}
                )
        self._set_version_tags(
            name, candidate_version, {TAG_ROLLOUT_ID: rollout_id, TAG_PROMOTED_AT: stamp}
        )
        return moves

    def restore_previous(
        self, name: str, promote: PromoteSpec, *, rollout_id: str | None, reason: str
    ) -> list[AliasMove]:
        """Point `promote.alias` back at `promote.keep_previous_as` (`gray rollback --to
        previous`). Already there: nothing to do, no error."""
        keep = promote.keep_previous_as
        if not keep:
            raise ConfigError(
                f"promote.keep_previous_as is empty, so no previous version of {name} was kept; "
                "move the alias to a version number instead"
            )
        registered = self._registered_model(name)
        aliases = {a: str(v) for a, v in (registered.aliases or {}).items()}
        previous = aliases.get(keep)
        if previous is None:
            raise AliasNotFoundError(
                f"registered model {name!r} has no alias @{keep}, so there is no previous "
                f"version to restore @{promote.alias} to; nothing was changed"
            )
        current = aliases.get(promote.alias)
        if current == previous:
            return []
        move = self.set_alias(
            name,
            promote.alias,
            previous,
            expected_from=current,
            rollout_id=rollout_id,
            reason=reason,
        )
        if current is not None:
            tags = {TAG_ROLLED_BACK_AT: move.at}
            if rollout_id:
                tags[TAG_ROLLOUT_ID] = rollout_id
            self._set_version_tags(name, current, tags)
        return [move]

    def mark_rolled_back(self, name: str, version: str, rollout_id: str) -> None:
        """Tag a version that a rollout rolled back (traffic returned to the baseline)."""
        self._set_version_tags(
            name, str(version), {TAG_ROLLOUT_ID: rollout_id, TAG_ROLLED_BACK_AT: now_iso()}
        )

    def history(self, name: str) -> list[AliasMove]:
        """Every alias move gray recorded for `name`, oldest first."""
        return alias_history.decode_history(dict(self._registered_model(name).tags or {}))

    # -- binding (training side) ----------------------------------------------------------

    def log_preprocessor(
        self,
        model_name: str,
        version: str | int,
        preprocessor: Any | str | Path,
        *,
        artifact_path: str = "preprocessor",
    ) -> str:
        """See the module function `log_preprocessor`."""
        info = self.resolve(model_name, str(version))
        _refuse_rebinding(info)
        artifact_path = artifact_path.strip("/")
        if not artifact_path:
            raise ConfigError("artifact_path must name a folder inside the model version")
        location, repository = self._artifact_repository(model_name, info.version)
        already = self._call(
            f"list {artifact_path!r} in {model_name} version {info.version}",
            lambda: repository.list_artifacts(artifact_path),
        )
        if already:
            raise PreprocessorError(
                f"{model_name} version {info.version} already holds files at {artifact_path!r} "
                f"({location}) without a {TAG_PREPROCESSOR_SHA256} tag; choose another "
                "artifact_path"
            )
        downloads = self.cache_dir / "downloads"
        downloads.mkdir(parents=True, exist_ok=True)
        staging = preprocessors.scratch_dir(downloads, "staging")
        try:
            preprocessors.stage_preprocessor(preprocessor, staging)
            sha256 = preprocessors.tree_sha256(staging)
            self._call(
                f"upload the preprocessor of {model_name} version {info.version}",
                lambda: repository.log_artifacts(str(staging), artifact_path),
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        # The hash tag goes last: it is what makes the binding count.
        self._set_version_tags(
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
        info = self.resolve(model_name, str(version))
        _refuse_rebinding(info)
        self._set_version_tags(
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
        info = self.resolve(model_name, str(version))
        _refuse_rebinding(info)
        if preprocessor_ref is None:
            known = self.versions(preprocessor_model_name)
            if not known:
                raise ModelNotFoundError(
                    f"registered model {preprocessor_model_name!r} has no versions to bind"
                )
            chosen = known[-1]
        else:
            chosen = self.resolve(preprocessor_model_name, preprocessor_ref)
        _require_ready(chosen, preprocessor_ref or chosen.version)
        _, repository = self._artifact_repository(preprocessor_model_name, chosen.version)
        downloads = self.cache_dir / "downloads"
        downloads.mkdir(parents=True, exist_ok=True)
        work = preprocessors.scratch_dir(downloads, "bind")
        try:
            local = Path(
                self._call(
                    f"download {preprocessor_model_name} version {chosen.version}",
                    lambda: repository.download_artifacts("", str(work)),
                )
            )
            preprocessors.load_preprocessor(local)  # refuse to bind something without .transform
            sha256 = preprocessors.tree_sha256(local)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self._set_version_tags(
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
    registry = Registry(_training_side_uri(registry_uri))
    return registry.log_preprocessor(model_name, version, preprocessor, artifact_path=artifact_path)


def declare_no_preprocessor(
    model_name: str, version: str | int, *, registry_uri: str | None = None
) -> None:
    """Record that a version needs no separate preprocessor (a scikit-learn Pipeline, say,
    whose preprocessing is inside the model). The gateway serves only versions whose
    preprocessor is bound or declared absent, so this is the explicit way to say "none"."""
    Registry(_training_side_uri(registry_uri)).declare_no_preprocessor(model_name, version)


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
    registry = Registry(_training_side_uri(registry_uri))
    return registry.bind_registered_preprocessor(
        model_name, version, preprocessor_model_name, preprocessor_ref=preprocessor_ref
    )


def _training_side_uri(registry_uri: str | None) -> str:
    if registry_uri:
        return registry_uri
    import mlflow

    return mlflow.get_registry_uri()


def _version_info(mv: Any, aliases: tuple[str, ...] | None = None) -> ModelVersionInfo:
    tags = {str(k): str(v) for k, v in (mv.tags or {}).items()}
    name = str(mv.name)
    version = str(mv.version)
    return ModelVersionInfo(
        name=name,
        version=version,
        model_uri=f"models:/{name}/{version}",
        source=str(mv.source or ""),
        run_id=mv.run_id or None,
        status=str(mv.status or ""),
        aliases=aliases if aliases is not None else tuple(sorted(mv.aliases or ())),
        tags=tags,
        preprocessor_sha256=tags.get(TAG_PREPROCESSOR_SHA256),
        preprocessor_binding=tags.get(TAG_PREPROCESSOR_BINDING),
    )


def _require_ready(info: ModelVersionInfo, ref: str) -> None:
    if info.status != READY:
        raise VersionNotReadyError(
            f"{info.name} version {info.version} ({ref}) is {info.status or 'in an unknown state'}"
            ", not READY; wait until its registration finishes or choose another version"
        )


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


def _load_pyfunc(local: Path, what: str) -> tuple[Any, Any | None, bool]:
    """(pyfunc model, input example or None, whether the model is fully in memory)."""
    import mlflow.pyfunc
    from mlflow.models import Model

    try:
        metadata = Model.load(str(local))
        model = mlflow.pyfunc.load_model(str(local))
        example = _input_example(metadata, local) if metadata.saved_input_example_info else None
    except Exception as exc:  # a flavor's loader can raise anything its library raises
        raise RegistryError(f"cannot load {what}: {_cause(exc)}") from exc
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


def _describe(version: str | None) -> str:
    return "no version" if version is None else f"version {version}"


def _ref_suffix(ref: str) -> str:
    return ref if ref.startswith("@") else f"/{ref}"


def _cause(exc: BaseException) -> str:
    """A one-line cause: the OS error when there is one, else the first line, shortened."""
    from mlflow.exceptions import MlflowException

    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if not isinstance(exc, MlflowException | OSError):
        text = f"{type(exc).__name__}: {text}"
    errno = _ERRNO.search(str(text))
    if errno:
        return errno.group(0).strip()
    first = str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__
    return first if len(first) <= 300 else first[:297] + "..."
