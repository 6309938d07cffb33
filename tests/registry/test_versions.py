"""Versions against real MLflow stores: resolve `@alias` or a number, pin, drift, list."""

from __future__ import annotations

from typing import Any

import pytest

from gray.controller.errors import (
    AliasNotFoundError,
    ConfigError,
    ModelNotFoundError,
    SameVersionError,
    VersionNotReadyError,
)
from gray.controller.plan.models import ModelSpec
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
