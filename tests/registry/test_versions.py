"""Versions against real MLflow stores: resolve `@alias` or a number, pin, drift, list."""

from __future__ import annotations

from typing import Any

import pytest

from gray.controller.errors import (
    AliasNotFoundError,
    ConfigError,
    ModelNotFoundError,
    RegistryError,
    SameVersionError,
    VersionNotReadyError,
)
from gray.controller.plan.models import ModelSpec, PromoteSpec
from gray.controller.registry import ModelVersionInfo, RegistryClient, RolloutMark
from gray.controller.registry.aliases import Aliases
from gray.controller.registry.versions import Versions, parse_ref
from gray.demo.models import ROLE_ALIASES, ROLES
from gray.gateway.registry_loader import RegistryLoader

from .helpers import client, copy_version, set_status


def plan_model(
    store: Any, baseline: str = "@champion", candidate: str = "@challenger"
) -> ModelSpec:
    return ModelSpec(name=store.model_name, baseline=baseline, candidate=candidate)


def test_resolves_aliases_and_version_numbers_to_pinned_versions(store: Any) -> None:
    registry = store.registry()
    baseline = store.versions["baseline"]

    info = registry.resolve(store.model_name, "@champion")

    assert info.version == baseline
    assert info.model_uri == f"models:/{store.model_name}/{baseline}"
    assert info.status == "READY"
    assert info.aliases == ("champion",)
    assert info.run_id
    assert info.preprocessor_binding == "artifact:preprocessor"
    assert info.preprocessor_sha256 is not None and len(info.preprocessor_sha256) == 64
    assert info.tags["gray.demo.role"] == "baseline"
    assert registry.resolve(store.model_name, store.versions["good"]).aliases == ("challenger",)
    assert info.to_dict()["aliases"] == ["champion"]


def test_resolution_errors_say_what_to_fix(store: Any) -> None:
    registry = store.registry()
    with pytest.raises(AliasNotFoundError, match=r"no alias @staging .*@champion -> "):
        registry.resolve(store.model_name, "@staging")
    with pytest.raises(ModelNotFoundError, match="no registered model 'nope'"):
        registry.resolve("nope", "@champion")
    with pytest.raises(ModelNotFoundError, match="has no version 999"):
        registry.resolve(store.model_name, "999")
    with pytest.raises(ConfigError, match="use '@alias'"):
        registry.resolve(store.model_name, "champion")


def test_pin_resolves_both_sides_and_refuses_one_version_twice(store: Any) -> None:
    registry = store.registry()
    pinned = registry.pin(plan_model(store))
    assert (pinned.baseline.version, pinned.candidate.version) == (
        store.versions["baseline"],
        store.versions["good"],
    )
    with pytest.raises(SameVersionError, match=f"version {store.versions['baseline']}"):
        registry.pin(plan_model(store, candidate=store.versions["baseline"]))


def test_pin_refuses_a_version_that_is_not_ready(store: Any) -> None:
    set_status(store.root, store.model_name, store.versions["good"], "PENDING_REGISTRATION")
    with pytest.raises(VersionNotReadyError, match="PENDING_REGISTRATION, not READY"):
        store.registry().pin(plan_model(store))
    with pytest.raises(VersionNotReadyError):
        RegistryLoader(store.uri, store.model_name).load(store.versions["good"])


def test_a_pinned_rollout_keeps_its_versions_when_aliases_move(store: Any) -> None:
    registry = store.registry()
    model = plan_model(store)
    pinned = registry.pin(model)
    assert registry.alias_drift(model, pinned) == []

    newer = copy_version(store.uri, store.model_name, store.versions["good"])
    client(store.uri).set_registered_model_alias(store.model_name, "challenger", newer)
    client(store.uri).delete_registered_model_alias(store.model_name, "champion")

    drift = registry.alias_drift(model, pinned)
    good = store.versions["good"]
    assert len(drift) == 2
    assert "@champion" in drift[0] and "removed" in drift[0]
    assert f"moved from version {good} to {newer}" in drift[1]
    assert f"keeps testing version {good}" in drift[1]
    assert pinned.candidate.version == good
    # Plans that name version numbers cannot drift.
    by_number = plan_model(store, store.versions["baseline"], good)
    assert registry.alias_drift(by_number, registry.pin(by_number)) == []


def test_versions_lists_every_role_with_its_alias(demo_store: Any) -> None:
    versions = demo_store.registry().versions(demo_store.model_name)
    assert [info.version for info in versions] == [demo_store.versions[role] for role in ROLES]
    for role, info in zip(ROLES, versions, strict=True):
        assert info.aliases == (ROLE_ALIASES[role],)
        assert info.preprocessor_sha256 is not None


def version_with(tags: dict[str, str]) -> ModelVersionInfo:
    return ModelVersionInfo(
        name="fraud",
        version="3",
        model_uri="models:/fraud/3",
        source="",
        run_id=None,
        status="READY",
        aliases=(),
        tags=tags,
    )


def test_last_rollout_is_the_latest_thing_a_rollout_did_to_the_version() -> None:
    assert version_with({}).last_rollout is None
    assert version_with({"gray.rollout_id": "r-1"}).last_rollout == RolloutMark("r-1", "", "")
    both = {
        "gray.rollout_id": "r-2",
        "gray.promoted_at": "2026-01-01T00:00:00Z",
        "gray.rolled_back_at": "2026-01-02T00:00:00Z",
    }
    mark = version_with(both).last_rollout
    assert mark == RolloutMark("r-2", "rolled back", "2026-01-02T00:00:00Z")
    assert mark is not None and mark.to_dict() == {
        "rollout_id": "r-2",
        "event": "rolled back",
        "at": "2026-01-02T00:00:00Z",
    }


def test_last_rollout_reads_what_a_promotion_and_a_rollback_wrote(fresh_registry: Any) -> None:
    store = fresh_registry
    mlflow_client = RegistryClient(store.uri)
    versions, aliases = Versions(mlflow_client), Aliases(mlflow_client)
    name, baseline, good = store.model_name, store.versions["baseline"], store.versions["good"]

    aliases.promote(name, good, PromoteSpec(), "r-5", expect_current=baseline)

    promoted = versions.resolve(name, good).last_rollout
    replaced = versions.resolve(name, baseline).last_rollout
    assert promoted is not None and (promoted.rollout_id, promoted.event) == ("r-5", "promoted")
    assert replaced is not None and (replaced.rollout_id, replaced.event) == ("r-5", "replaced")
    aliases.mark_rolled_back(name, good, "r-6")
    again = versions.resolve(name, good).last_rollout
    assert again is not None and (again.rollout_id, again.event) == ("r-6", "rolled back")


def test_plans_that_name_version_numbers_never_read_the_registry_for_drift(
    unused_port: int,
) -> None:
    # Nothing listens there: any call would fail, so none is made.
    unreachable = Versions(RegistryClient(f"http://127.0.0.1:{unused_port}", retries=0))
    assert (
        unreachable.drift_from(ModelSpec(name="fraud", baseline="1", candidate="2"), "1", "2") == []
    )
    with pytest.raises(RegistryError, match="Connection refused"):
        unreachable.drift_from(ModelSpec(name="fraud", baseline="1", candidate="@new"), "1", "2")


def test_references_are_an_alias_or_a_positive_version_number() -> None:
    assert parse_ref("@champion") == ("champion", None)
    assert parse_ref(" 007 ") == (None, "7")
    for bad in ("champion", "@", "0", "-1", "1.5", ""):
        with pytest.raises(ConfigError, match="use '@alias'"):
            parse_ref(bad)
