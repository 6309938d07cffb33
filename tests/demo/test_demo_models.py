"""The demo's models: trained in seconds, each with the defect its role names."""

from __future__ import annotations

import time

import numpy as np

from gray.demo.models import demo_dataset, train_demo_models


def test_demo_models_train_fast_with_their_defects() -> None:
    started = time.perf_counter()
    demo = train_demo_models(seed=0)
    assert time.perf_counter() - started < 10
    accuracy = demo.holdout_accuracy
    assert accuracy["good"] >= accuracy["baseline"] >= 0.9
    assert accuracy["bad_preprocessor"] <= accuracy["good"] - 0.05
    features, _ = demo_dataset()
    scaled = demo.preprocessors["bad_raises"].transform(features)
    refused = 1 - float(np.mean(demo.models["bad_raises"].accepts(scaled)))
    assert 0.2 <= refused <= 0.3
