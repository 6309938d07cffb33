"""Loading, warming and unloading versions in the background."""

from __future__ import annotations

import threading

from gray.gateway.models import FAILED, LOADING, READY, ModelManager

from .tiny_models import TinyLoader, TinyModel, default_loader


def test_a_version_is_ready_only_after_it_answered_its_warm_up() -> None:
    loader = default_loader()
    loader.gate = threading.Event()
    manager = ModelManager(loader, warmup_rounds=3)
    try:
        assert manager.request_load("1") == LOADING
        assert manager.ready("1") is None and manager.state("1") == LOADING
        assert manager.request_load("1") == LOADING  # no second load while one runs
        loader.gate.set()
        assert manager.wait(["1"], timeout=10) == {"1": READY}
        loaded = manager.ready("1")
        assert loaded is not None
        contract = loaded.reader.contract
        assert contract is not None and contract.columns == ("amount", "count", "country")
        assert loader.models["1"].calls == 3
        assert loader.loads == ["1"]
        assert manager.request_load("1") == READY
        assert manager.describe()["1"]["warmup_seconds"] >= 0
    finally:
        manager.shutdown()


def test_failures_are_reported_with_a_reason_and_may_be_retried() -> None:
    manager = ModelManager(default_loader())
    try:
        for version in ("3", "404"):
            manager.request_load(version)
        assert manager.wait(["3", "404"], timeout=10) == {"3": FAILED, "404": FAILED}
        reasons = {v: d["reason"] for v, d in manager.describe().items()}
        assert "failed its warm-up" in reasons["3"] and "broken" in reasons["3"]
        assert "no version 404" in reasons["404"]
        assert manager.request_load("3") == LOADING  # a failed load is tried again
    finally:
        manager.shutdown()


def test_a_version_without_an_input_example_is_ready_without_a_warm_up() -> None:
    loader = default_loader()
    manager = ModelManager(loader, warmup_rounds=3)
    try:
        manager.request_load("4")
        assert manager.wait(["4"], timeout=10) == {"4": READY}
        assert manager.describe()["4"]["warmup_seconds"] is None
        assert loader.models["4"].calls == 0
    finally:
        manager.shutdown()


def test_unload_forgets_the_version_and_a_load_in_flight_is_discarded() -> None:
    loader = default_loader()
    manager = ModelManager(loader)
    try:
        manager.request_load("1")
        manager.wait(["1"], timeout=10)
        assert manager.unload("1")
        assert manager.state("1") is None and manager.ready("1") is None
        assert not manager.unload("1")

        loader.gate = threading.Event()
        manager.request_load("2")
        assert manager.unload("2")
        loader.gate.set()
        manager.request_load("5")  # queued behind the discarded load
        manager.wait(["5"], timeout=10)
        assert manager.state("2") is None
        assert manager.states() == {"5": READY}
    finally:
        manager.shutdown()


def test_each_version_has_its_own_worker_threads() -> None:
    loader = TinyLoader(models={"1": TinyModel(), "2": TinyModel()})
    manager = ModelManager(loader, threads_per_version=2)
    try:
        manager.request_load("1")
        manager.request_load("2")
        manager.wait(["1", "2"], timeout=10)
        one, two = manager.ready("1"), manager.ready("2")
        assert one is not None and two is not None
        assert one.pool is not two.pool
        names = {one.pool.submit(lambda: threading.current_thread().name).result()}
        assert any(name.startswith("gray-predict-1") for name in names)
    finally:
        manager.shutdown()
