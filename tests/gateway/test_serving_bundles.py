"""Serving bundles from real MLflow stores: each version with its own verified preprocessor."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from gray.controller.registry import log_preprocessor
from gray.demo.models import ROLES, demo_dataset
from gray.gateway.registry_loader import RegistryLoader
from tests.registry.helpers import copy_version


def test_serving_bundles_apply_each_versions_own_preprocessor(demo_store: Any) -> None:
    features, labels = demo_dataset()
    bundles = {
        role: RegistryLoader(demo_store.uri, demo_store.model_name).load(demo_store.versions[role])
        for role in ROLES
    }
    for role, bundle in bundles.items():
        assert bundle.info.version == demo_store.versions[role]
        assert bundle.input_example.shape == (5, 30)
        assert len(bundle.predict(bundle.input_example)) == 5  # warm-up works for every role

    def accuracy(role: str) -> float:
        return float(np.mean(np.asarray(bundles[role].predict(features)) == labels.to_numpy()))

    assert accuracy("good") >= accuracy("baseline") >= 0.95
    assert accuracy("bad_preprocessor") <= accuracy("good") - 0.05
    largest = features.loc[[features["worst_area"].idxmax()]]
    with pytest.raises(Exception, match="outside the training range"):
        bundles["bad_raises"].predict(largest)
    started = time.perf_counter()
    for _ in range(5):
        bundles["bad_slow"].predict(features.head(1))
    assert time.perf_counter() - started >= 5 * 0.02


def test_a_preprocessor_returning_arrays_keeps_the_column_names(fresh_registry: Any) -> None:
    from sklearn.preprocessing import StandardScaler

    store = fresh_registry
    features, labels = demo_dataset()
    version = copy_version(store.uri, store.model_name, store.versions["good"])
    log_preprocessor(
        store.model_name,
        version,
        StandardScaler().fit(features),  # no set_output: transform returns a bare array
        registry_uri=store.uri,
        artifact_path="plain",
    )
    bundle = RegistryLoader(store.uri, store.model_name).load(version)
    predicted = np.asarray(bundle.predict(features))
    assert float(np.mean(predicted == labels.to_numpy())) > 0.95
