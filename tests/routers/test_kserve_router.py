"""The KServe router against the Kubernetes API stand-in, which plays KServe's controller:
the router contract, then what is KServe's own (the candidate's revision loaded with no
traffic, the split read back from the status, promotion) and the fencing every
Kubernetes router shares (resourceVersion conflicts, the lease annotation, expiry,
retries, a missing object)."""

from __future__ import annotations

import json
import time

import pytest

from gray.controller.errors import (
    EndpointUnreachableError,
    LeaseConflictError,
    LeaseExpiredError,
    ObjectNotFoundError,
    RouteNotSupportedError,
    RouteVerificationError,
    VersionNotLoadedError,
)
from gray.controller.routers.kserve import KServeRouter, inference_service
from gray.controller.routers.kubernetes_object import (
    LEASE_ANNOTATION,
    Connection,
    KubernetesObject,
    LeaseMark,
)
from gray.controller.types import Lease, RouteSpec
from tests.kubernetes_api_standin import KubernetesApiStandIn
from tests.routers.contract import RouterContract, RouterHarness
from tests.routers.fault_proxy import FaultProxy
from tests.routers.kubernetes_harness import NAMESPACE, STORAGE_URIS, KServeHarness

URI_1, URI_2 = STORAGE_URIS["1"], STORAGE_URIS["2"]


@pytest.fixture
def kserve(kubernetes_api: KubernetesApiStandIn, kubernetes_proxy: FaultProxy) -> KServeHarness:
    harness = KServeHarness(proxy=kubernetes_proxy, standin=kubernetes_api)
    harness.reset()
    return harness


class TestKServeRouterContract(RouterContract):
    @pytest.fixture
    def harness(self, kserve: KServeHarness) -> RouterHarness:
        return kserve


def lease_in_force(kserve: KServeHarness) -> LeaseMark | None:
    return LeaseMark.of(kserve.current(), "test")


def test_the_candidate_is_loaded_with_no_traffic_then_split_then_promoted(
    kserve: KServeHarness,
) -> None:
    router = kserve.router()
    assert router.read().route == RouteSpec(baseline="")  # gray has not written it yet
    assert router.ensure_loaded("1") is None  # the baseline serves already: nothing written
    assert kserve.current()["metadata"]["generation"] == 1
    assert router.ensure_loaded("2") is None
    predictor = kserve.current()["spec"]["predictor"]
    assert (predictor["model"]["storageUri"], predictor["canaryTrafficPercent"]) == (URI_2, 0)
    # The candidate's pods say which version they serve, for the kserve metrics preset.
    assert predictor["labels"] == {"version": "2"}
    assert kserve.standin.kserve_split(kserve.path) == {URI_1: 100, URI_2: 0}
    assert router.read().route.same_split(RouteSpec("1", "2", weight=0.0))

    lease = Lease("fraud-kserve", 1)
    applied = router.apply(RouteSpec("1", "2", weight=0.2), lease, ttl=60)
    assert applied.route.same_split(RouteSpec("1", "2", weight=0.2))
    assert kserve.standin.kserve_split(kserve.path) == {URI_1: 80, URI_2: 20}

    promoted = router.apply(RouteSpec(baseline="2"), lease)
    assert promoted.route == RouteSpec(baseline="2")
    assert "canaryTrafficPercent" not in kserve.current()["spec"]["predictor"]
    assert kserve.standin.kserve_split(kserve.path) == {URI_2: 100}
    status = kserve.current()["status"]["components"]["predictor"]
    assert status["previousRolledoutRevision"] == "sklearn-iris-predictor-00001"

    # `gray rollback --to previous`: the old version loaded again, then all its own.
    router.ensure_loaded("1")
    assert kserve.standin.kserve_split(kserve.path) == {URI_2: 100, URI_1: 0}
    reverted = router.apply(RouteSpec(baseline="1"), Lease("operator", 2))
    assert reverted.route == RouteSpec(baseline="1")
    assert kserve.standin.kserve_split(kserve.path) == {URI_1: 100}


def test_a_canary_is_not_replaced_while_it_takes_traffic(kserve: KServeHarness) -> None:
    kserve.standin.change(kserve.path, {"spec": {"predictor": {"canaryTrafficPercent": 30}}})
    with pytest.raises(VersionNotLoadedError, match="sends 30% of requests"):
        kserve.router().ensure_loaded("2")
    assert kserve.current()["spec"]["predictor"]["model"]["storageUri"] == URI_1


def test_a_revision_that_never_gets_ready_is_not_loaded(kserve: KServeHarness) -> None:
    kserve.standin.revisions[kserve.path].ready = False
    router = KServeRouter(kserve.obj(), STORAGE_URIS.__getitem__, settle_timeout=0.2)
    with pytest.raises(VersionNotLoadedError, match=r"not ready after 0\.2 s"):
        router.ensure_loaded("2")
    assert kserve.standin.kserve_split(kserve.path) == {URI_1: 100}


def test_kserve_refuses_a_mirror_an_audience_and_part_of_a_percent_before_writing(
    kserve: KServeHarness,
) -> None:
    router = kserve.router()
    for route in (
        RouteSpec("1", "2", mirror=0.5),
        RouteSpec("1", "2", weight=0.025),
    ):
        with pytest.raises(RouteNotSupportedError):
            router.apply(route, Lease("fraud-kserve", 1), ttl=60)
    assert kserve.current()["metadata"]["generation"] == 1


def test_a_change_by_someone_else_between_read_and_write_is_written_over(
    kserve: KServeHarness,
) -> None:
    """409 on a stale resourceVersion; the lease is unchanged, so gray reads and writes
    again, keeping the other writer's change."""
    labels = {"metadata": {"labels": {"team": "fraud"}}}
    kserve.standin.before_next_write(lambda: kserve.standin.change(kserve.path, labels))
    applied = kserve.router().apply(RouteSpec("1", "2", weight=0.1), Lease("r", 1), ttl=60)
    assert applied.route.same_split(RouteSpec("1", "2", weight=0.1))
    assert kserve.current()["metadata"]["labels"] == {"team": "fraud"}
    patches = [p for m, p in kserve.standin.requests[-6:] if m == "PATCH"]
    assert len(patches) == 2  # the refused write, then the one over the new version


def test_a_newer_gray_lease_written_between_read_and_write_refuses_the_write(
    kserve: KServeHarness,
) -> None:
    router = kserve.router()
    router.apply(RouteSpec("1", "2", weight=0.1), Lease("r", 1), ttl=60)
    operator = kserve.router()
    kserve.standin.before_next_write(lambda: operator.rollback(None))
    with pytest.raises(LeaseConflictError, match="epoch 2"):
        router.apply(RouteSpec("1", "2", weight=0.5), Lease("r", 1), ttl=60)
    assert kserve.carried().same_split(RouteSpec("1", "2", weight=0.0))
    mark = lease_in_force(kserve)
    assert mark is not None and mark.lease == Lease("r", 2)


def test_an_expired_lease_is_rolled_back_by_the_next_gray_call(kserve: KServeHarness) -> None:
    now = [1000.0]
    router = KServeRouter(
        kserve.obj(), STORAGE_URIS.__getitem__, settle_timeout=2.0, clock=lambda: now[0]
    )
    lease = Lease("r", 1)
    router.apply(RouteSpec("1", "2", weight=0.3), lease, ttl=30)
    now[0] += 31
    seen = router.read()
    assert seen.route.same_split(RouteSpec("1", "2", weight=0.0))
    assert seen.lease == Lease("r", 2)
    mark = json.loads(kserve.current()["metadata"]["annotations"][LEASE_ANNOTATION])
    assert mark["after_expiry"] is True
    with pytest.raises(LeaseExpiredError):
        router.renew(lease, 30)


def test_server_errors_are_retried_a_bounded_number_of_times(kserve: KServeHarness) -> None:
    kserve.standin.fail_next(2, 503)
    assert kserve.router().read().lease is None  # third try answers
    kserve.standin.fail_next(3, 500)
    with pytest.raises(EndpointUnreachableError, match="after 3 tries"):
        kserve.router().read()
    kserve.standin.reset_faults()


def test_a_missing_object_is_named(kubernetes_api: KubernetesApiStandIn) -> None:
    ref = inference_service(NAMESPACE, "no-such-model")
    obj = KubernetesObject(ref, Connection(server=kubernetes_api.url), first_pause=0.01)
    with pytest.raises(ObjectNotFoundError, match="InferenceService models/no-such-model"):
        KServeRouter(obj).read()


def test_an_api_server_slower_than_the_timeout_is_unreachable_in_bounded_time(
    kserve: KServeHarness,
) -> None:
    connection = Connection(server=kserve.standin.url, timeout=0.2)
    router = KServeRouter(KubernetesObject(kserve.ref, connection, first_pause=0.01))
    started = time.monotonic()
    with kserve.standin.delayed(0.4), pytest.raises(EndpointUnreachableError, match="ReadTimeout"):
        router.read()
    assert time.monotonic() - started < 1.5  # three tries of 0.2 s and two short pauses
    assert router.read().lease is None  # answers again once it is quick


def test_a_canary_kserve_does_not_report_is_never_taken_as_carried(kserve: KServeHarness) -> None:
    """In RawDeployment mode KServe ignores canaryTrafficPercent and reports no traffic:
    the write stands but is unverified, so the controller does not judge a split that
    does not exist."""
    kserve.standin.revisions[kserve.path].raw_deployment = True
    kserve.standin.change(kserve.path, {"metadata": {"labels": {"mode": "raw"}}})
    router = KServeRouter(kserve.obj(), STORAGE_URIS.__getitem__, settle_timeout=0.2)
    with pytest.raises(RouteVerificationError, match="status still does not show"):
        router.apply(RouteSpec("1", "2", weight=0.1), Lease("r", 1), ttl=60)
