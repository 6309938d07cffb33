"""Aliases: compare-and-set, promotion and its undoing, the history kept as registry tags."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gray.controller.errors import (
    AliasConflictError,
    AliasNotFoundError,
    ConfigError,
    ModelNotFoundError,
)
from gray.controller.plan.models import PromoteSpec
from gray.controller.registry import RegistryClient
from gray.controller.registry import aliases as alias_history
from gray.controller.registry.aliases import Aliases, AliasMove

from .helpers import client, copy_version


def test_promote_then_roll_back_moves_aliases_tags_versions_and_records_history(
    store: Any,
) -> None:
    registry = store.registry()
    name, baseline, good = store.model_name, store.versions["baseline"], store.versions["good"]

    moves = registry.promote(name, good, PromoteSpec(), "r-1", expect_current=baseline)

    assert [(m.alias, m.from_version, m.to_version) for m in moves] == [
        ("previous-champion", None, baseline),
        ("champion", baseline, good),
    ]
    assert registry.resolve(name, "@champion").version == good
    assert registry.resolve(name, "@previous-champion").version == baseline
    promoted = registry.resolve(name, good).tags
    assert promoted["gray.rollout_id"] == "r-1" and "gray.promoted_at" in promoted
    replaced = registry.resolve(name, baseline).tags
    assert replaced["gray.rollout_id"] == "r-1" and "gray.replaced_at" in replaced

    back = registry.restore_previous(name, PromoteSpec(), rollout_id=None, reason="p99 spike")

    assert [(m.alias, m.from_version, m.to_version, m.reason) for m in back] == [
        ("champion", good, baseline, "p99 spike")
    ]
    assert registry.resolve(name, "@champion").version == baseline
    assert "gray.rolled_back_at" in registry.resolve(name, good).tags
    # Pressing the button again changes nothing.
    assert registry.restore_previous(name, PromoteSpec(), rollout_id=None, reason="again") == []

    history = registry.history(name)
    assert [(m.alias, m.from_version, m.to_version, m.rollout_id) for m in history] == [
        ("previous-champion", None, baseline, "r-1"),
        ("champion", baseline, good, "r-1"),
        ("champion", good, baseline, None),
    ]
    assert all("@" in move.actor and move.at.endswith("Z") for move in history)
    # Visible from anywhere: the history is plain registered-model tags in MLflow.
    tags = client(store.uri).get_registered_model(name).tags
    assert sorted(k for k in tags if k.startswith("gray.alias_move.")) == [
        "gray.alias_move.000001",
        "gray.alias_move.000002",
        "gray.alias_move.000003",
    ]


def test_alias_moves_refuse_when_the_alias_moved_underneath(store: Any) -> None:
    registry = store.registry()
    name, baseline, good = store.model_name, store.versions["baseline"], store.versions["good"]
    client(store.uri).set_registered_model_alias(name, "champion", good)  # someone else

    with pytest.raises(AliasConflictError, match=f"points at version {good}, not at the pinned"):
        registry.promote(name, good, PromoteSpec(), "r-2", expect_current=baseline)
    with pytest.raises(AliasConflictError, match=f"not version {baseline} as expected"):
        registry.set_alias(
            name, "champion", baseline, expected_from=baseline, rollout_id=None, reason="x"
        )
    assert registry.history(name) == []
    assert registry.resolve(name, "@champion").version == good

    move = registry.set_alias(
        name, "champion", baseline, expected_from=good, rollout_id="r-3", reason="by hand"
    )
    assert (move.from_version, move.to_version, move.rollout_id) == (good, baseline, "r-3")
    assert registry.history(name) == [move]


def test_roll_back_without_a_kept_previous_version_is_refused(store: Any) -> None:
    registry = store.registry()
    with pytest.raises(AliasNotFoundError, match="no alias @previous-champion"):
        registry.restore_previous(store.model_name, PromoteSpec(), rollout_id=None, reason="x")
    with pytest.raises(ConfigError, match="keep_previous_as is empty"):
        registry.restore_previous(
            store.model_name, PromoteSpec(keep_previous_as=None), rollout_id=None, reason="x"
        )


def test_mark_rolled_back_tags_the_version(store: Any) -> None:
    registry = store.registry()
    registry.mark_rolled_back(store.model_name, store.versions["good"], "r-9")
    tags = registry.resolve(store.model_name, "@challenger").tags
    assert tags["gray.rollout_id"] == "r-9"
    assert tags["gray.rolled_back_at"].endswith("Z")


def test_successive_promotions_keep_the_version_each_one_replaced(fresh_registry: Any) -> None:
    store = fresh_registry
    registry = store.registry()
    name, baseline, good = store.model_name, store.versions["baseline"], store.versions["good"]
    third = copy_version(store.uri, name, good)

    registry.promote(name, good, PromoteSpec(), "r-1")
    second = registry.promote(name, third, PromoteSpec(), "r-2", expect_current=good)

    assert [(m.alias, m.from_version, m.to_version) for m in second] == [
        ("previous-champion", baseline, good),
        ("champion", good, third),
    ]
    # Promoting what is already the champion moves nothing.
    assert registry.promote(name, third, PromoteSpec(), "r-3") == []
    assert registry.resolve(name, third).tags["gray.rollout_id"] == "r-3"
    without_previous = PromoteSpec(keep_previous_as=None)
    moves = registry.promote(name, good, without_previous, "r-4")
    assert [(m.alias, m.to_version) for m in moves] == [("champion", good)]
    assert registry.resolve(name, "@previous-champion").version == good


def test_alias_history_round_trips_in_order_and_skips_unreadable_entries() -> None:
    moves = [
        AliasMove("fraud", "champion", None, "1", "2026-01-01T00:00:00Z", "a@h", None, "first"),
        AliasMove("fraud", "champion", "1", "2", "2026-01-02T00:00:00Z", "b@h", "r-1", "x" * 5000),
    ]
    tags = {
        alias_history.tag_key(10): alias_history.encode(moves[1]),
        alias_history.tag_key(9): alias_history.encode(moves[0]),
        alias_history.tag_key(11): "{not json",
        "gray.alias_move.latest": json.dumps(moves[0].to_dict()),
        "owner": "fraud-team",
    }
    decoded = alias_history.decode_history(tags)
    assert [m.to_version for m in decoded] == ["1", "2"]
    assert len(decoded[1].reason) == alias_history.MAX_REASON_CHARS
    assert alias_history.next_sequence(tags) == 12
    assert alias_history.next_sequence({}) == 1
    assert alias_history.tag_key(1) == "gray.alias_move.000001"


def test_actor_comes_from_the_environment_or_user_at_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAY_ACTOR", "ci/deploy-job-42")
    assert alias_history.current_actor() == "ci/deploy-job-42"
    monkeypatch.delenv("GRAY_ACTOR")
    assert "@" in alias_history.current_actor()


def test_compare_and_set_creates_an_alias_and_refuses_a_missing_version(
    fresh_registry: Any,
) -> None:
    store = fresh_registry
    aliases = Aliases(RegistryClient(store.uri))
    name, good = store.model_name, store.versions["good"]
    assert aliases.target(name, "canary") is None

    move = aliases.set_alias(
        name, "canary", good, expected_from=None, rollout_id=None, reason="first canary"
    )

    assert (move.from_version, move.to_version, move.reason) == (None, good, "first canary")
    assert aliases.points_at(name, "canary", good)
    with pytest.raises(ModelNotFoundError, match="has no version 999"):
        aliases.set_alias(name, "canary", "999", expected_from=good, rollout_id=None, reason="x")
    # The refused move changed nothing and recorded nothing.
    assert aliases.target(name, "canary") == good
    assert aliases.history(name) == [move]


def test_the_history_continues_after_entries_written_by_others(fresh_registry: Any) -> None:
    store = fresh_registry
    aliases = Aliases(RegistryClient(store.uri))
    name, baseline, good = store.model_name, store.versions["baseline"], store.versions["good"]
    # A newer entry than gray's own, written by another tool, and one it cannot read.
    client(store.uri).set_registered_model_tag(name, alias_history.tag_key(7), "{unreadable")

    move = aliases.set_alias(
        name, "champion", good, expected_from=baseline, rollout_id="r-1", reason="by hand"
    )

    tags = client(store.uri).get_registered_model(name).tags
    assert json.loads(tags[alias_history.tag_key(8)]) == move.to_dict()
    assert aliases.history(name) == [move]
