"""`Registry`: the registry package's parts behind one object, for the controller and the CLI.

Each method hands over to the part that does the job: `model_versions` (resolve, pin,
drift), `verifier` (preprocessor verification), `aliases` (compare-and-set, promotion,
history) and `binder` (training-side binding). The parts share one `RegistryClient`, so one registry
keeps one MLflow client, one retry budget and one error mapping.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gray.controller.registry.aliases import Aliases, AliasMove
from gray.controller.registry.binding import Bound, PreprocessorBinder
from gray.controller.registry.client import RegistryClient
from gray.controller.registry.preprocessors import (
    PreprocessorVerifier,
    VerifiedPreprocessor,
    default_cache_dir,
)
from gray.controller.registry.versions import ModelVersionInfo, PinnedPair, Versions

if TYPE_CHECKING:
    from gray.controller.plan.models import ModelSpec, PreprocessorBinding, PromoteSpec

__all__ = ["Registry"]


class Registry:
    """An MLflow model registry, reached through bounded retries and gray's error tree."""

    def __init__(self, uri: str, *, cache_dir: Path | None = None, retries: int = 3) -> None:
        self.client = RegistryClient(uri, retries=retries)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.model_versions = Versions(self.client)
        self.aliases = Aliases(self.client)
        self.verifier = PreprocessorVerifier(self.client, self.model_versions, self.cache_dir)
        self.binder = PreprocessorBinder(self.client, self.model_versions, self.cache_dir)

    @property
    def uri(self) -> str:
        return self.client.uri

    # -- versions ---------------------------------------------------------------------------

    def resolve(self, name: str, ref: str) -> ModelVersionInfo:
        """The version that `ref` ("@alias" or "3") names now."""
        return self.model_versions.resolve(name, ref)

    def pin(self, model: ModelSpec) -> PinnedPair:
        """Resolve the plan's baseline and candidate once; both READY and distinct."""
        return self.model_versions.pin(model)

    def alias_drift(self, model: ModelSpec, pinned: PinnedPair) -> list[str]:
        """Messages for each plan alias that no longer points at the pinned version."""
        return self.drift_from(model, pinned.baseline.version, pinned.candidate.version)

    def drift_from(self, model: ModelSpec, baseline: str, candidate: str) -> list[str]:
        """`alias_drift` for versions pinned earlier (a running rollout keeps only numbers)."""
        return self.model_versions.drift_from(model, baseline, candidate)

    def versions(self, name: str) -> list[ModelVersionInfo]:
        """Every version of `name`, oldest first, with its aliases."""
        return self.model_versions.list_versions(name)

    # -- preprocessors ----------------------------------------------------------------------

    def verify_preprocessor(
        self,
        info: ModelVersionInfo,
        binding: PreprocessorBinding | None,
        ref: str | None = None,
    ) -> VerifiedPreprocessor | None:
        """Fetch the version's preprocessor into the cache and check it against the tag."""
        return self.verifier.verify(info, binding, ref)

    # -- aliases ----------------------------------------------------------------------------

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
        """Point `alias` at `version` if it still points at `expected_from`; record the move."""
        return self.aliases.set_alias(
            name, alias, version, expected_from=expected_from, rollout_id=rollout_id, reason=reason
        )

    def alias_points_at(self, name: str, alias: str, version: str) -> bool:
        return self.aliases.points_at(name, alias, version)

    def promote(
        self,
        name: str,
        candidate_version: str,
        promote: PromoteSpec,
        rollout_id: str,
        *,
        expect_current: str | None = None,
    ) -> list[AliasMove]:
        """Move `promote.alias` to the candidate, keeping the replaced version."""
        return self.aliases.promote(
            name, candidate_version, promote, rollout_id, expect_current=expect_current
        )

    def restore_previous(
        self, name: str, promote: PromoteSpec, *, rollout_id: str | None, reason: str
    ) -> list[AliasMove]:
        """Point `promote.alias` back at `promote.keep_previous_as`."""
        return self.aliases.restore_previous(name, promote, rollout_id=rollout_id, reason=reason)

    def mark_rolled_back(self, name: str, version: str, rollout_id: str) -> None:
        """Tag a version that a rollout rolled back (traffic returned to the baseline)."""
        self.aliases.mark_rolled_back(name, version, rollout_id)

    def history(self, name: str) -> list[AliasMove]:
        """Every alias move gray recorded for `name`, oldest first."""
        return self.aliases.history(name)

    # -- binding (training side) ------------------------------------------------------------

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
        """Bind a file or folder, a registered preprocessor model, or (neither) none."""
        return self.binder.bind(
            model_name,
            version,
            path=path,
            registered_model=registered_model,
            preprocessor_ref=preprocessor_ref,
            artifact_path=artifact_path,
        )
