"""Model versions as gray sees them: resolving `@alias` or `3`, pinning a rollout's pair,
reporting aliases that moved after the pin, and the tags gray writes on a version.

A rollout pins its two versions once (`Versions.pin`) and keeps testing them even when an
alias moves underneath it (`Versions.drift_from` reports that).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from gray.controller.errors import (
    AliasNotFoundError,
    ConfigError,
    SameVersionError,
    VersionNotReadyError,
)
from gray.controller.registry.client import RegistryClient

if TYPE_CHECKING:
    from gray.controller.plan.models import ModelSpec

__all__ = [
    "NO_PREPROCESSOR",
    "ModelVersionInfo",
    "PinnedPair",
    "RolloutMark",
    "Versions",
]

# The tags gray writes on a model version. Records written by any gray version are read
# with these names, so they never change.
TAG_PREPROCESSOR_SHA256 = "gray.preprocessor.sha256"
TAG_PREPROCESSOR_BINDING = "gray.preprocessor.binding"
TAG_PREPROCESSOR_VERSION = "gray.preprocessor.version"
# Both preprocessor tags hold this for a version declared to need no separate preprocessor
# (its preprocessing is inside the model): a recorded decision, unlike a missing tag.
NO_PREPROCESSOR = "none"
TAG_ROLLOUT_ID = "gray.rollout_id"
TAG_PROMOTED_AT = "gray.promoted_at"
TAG_REPLACED_AT = "gray.replaced_at"
TAG_ROLLED_BACK_AT = "gray.rolled_back_at"
# What a rollout did to a version, by the tag holding when.
ROLLOUT_EVENT_TAGS = (
    (TAG_PROMOTED_AT, "promoted"),
    (TAG_REPLACED_AT, "replaced"),
    (TAG_ROLLED_BACK_AT, "rolled back"),
)

READY = "READY"


@dataclass(frozen=True)
class RolloutMark:
    """The rollout that last touched a version and what it did (`event` and `at` are empty
    when only the rollout id is recorded)."""

    rollout_id: str
    event: str
    at: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


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
    def last_rollout(self) -> RolloutMark | None:
        """The rollout that last touched this version, from gray's tags; None if none did."""
        rollout_id = self.tags.get(TAG_ROLLOUT_ID)
        if rollout_id is None:
            return None
        events = [(self.tags[tag], event) for tag, event in ROLLOUT_EVENT_TAGS if tag in self.tags]
        if not events:
            return RolloutMark(rollout_id=rollout_id, event="", at="")
        at, event = max(events)
        return RolloutMark(rollout_id=rollout_id, event=event, at=at)

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


class Versions:
    """Reads model versions and the aliases that point at them."""

    def __init__(self, client: RegistryClient) -> None:
        self._client = client

    def resolve(self, name: str, ref: str) -> ModelVersionInfo:
        """The version that `ref` ("@alias" or "3") names now."""
        alias, version = parse_ref(ref)
        if alias is not None:
            aliases = dict(self._client.registered_model(name).aliases or {})
            if alias not in aliases:
                known = ", ".join(f"@{a} -> {v}" for a, v in sorted(aliases.items())) or "none"
                raise AliasNotFoundError(
                    f"registered model {name!r} has no alias @{alias} (aliases: {known}); set it "
                    f"in MLflow or use a version number"
                )
            version = str(aliases[alias])
        assert version is not None
        return version_info(self._client.model_version(name, version))

    def pin(self, model: ModelSpec) -> PinnedPair:
        """Resolve the plan's baseline and candidate once; both READY and distinct."""
        baseline = self.resolve(model.name, model.baseline)
        candidate = self.resolve(model.name, model.candidate)
        for ref, info in ((model.baseline, baseline), (model.candidate, candidate)):
            require_ready(info, ref)
        if baseline.version == candidate.version:
            raise SameVersionError(
                f"baseline {model.baseline} and candidate {model.candidate} both resolve to "
                f"{model.name} version {baseline.version}; point the candidate at the new "
                "version (or the baseline at the old one)"
            )
        return PinnedPair(baseline=baseline, candidate=candidate)

    def drift_from(self, model: ModelSpec, baseline: str, candidate: str) -> list[str]:
        """Messages for each plan alias that no longer points at the version pinned for it
        (a running rollout keeps only the version numbers)."""
        sides = (
            ("baseline", model.baseline, str(baseline)),
            ("candidate", model.candidate, str(candidate)),
        )
        if not any(ref.startswith("@") for _, ref, _ in sides):
            return []
        aliases = dict(self._client.registered_model(model.name).aliases or {})
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

    def list_versions(self, name: str) -> list[ModelVersionInfo]:
        """Every version of `name`, oldest first, with its aliases."""
        registered = self._client.registered_model(name)
        aliases_of: dict[str, list[str]] = {}
        for alias, version in (registered.aliases or {}).items():
            aliases_of.setdefault(str(version), []).append(alias)
        escaped = name.replace("'", "\\'")
        found: list[Any] = []
        token: str | None = None
        while True:
            page = self._client.call(
                f"list the versions of {name!r}",
                lambda token=token: self._client.mlflow.search_model_versions(
                    filter_string=f"name = '{escaped}'", page_token=token
                ),
            )
            found.extend(page)
            token = page.token
            if not token:
                break
        infos = [
            version_info(mv, aliases=tuple(sorted(aliases_of.get(str(mv.version), []))))
            for mv in found
        ]
        return sorted(infos, key=lambda info: int(info.version))


def parse_ref(ref: str) -> tuple[str | None, str | None]:
    """(alias, None) for "@alias", (None, version) for "3"."""
    text = str(ref).strip()
    if text.startswith("@") and len(text) > 1:
        return text[1:], None
    if text.isdigit() and int(text) >= 1:
        return None, str(int(text))
    raise ConfigError(f"model reference {ref!r}: use '@alias' (e.g. @champion) or a version number")


def version_info(mv: Any, aliases: tuple[str, ...] | None = None) -> ModelVersionInfo:
    """gray's view of an MLflow `ModelVersion`."""
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


def require_ready(info: ModelVersionInfo, ref: str) -> None:
    """Refuse a version whose registration has not finished (or failed)."""
    if info.status != READY:
        raise VersionNotReadyError(
            f"{info.name} version {info.version} ({ref}) is {info.status or 'in an unknown state'}"
            ", not READY; wait until its registration finishes or choose another version"
        )
