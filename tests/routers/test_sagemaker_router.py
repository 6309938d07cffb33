"""`router: {type: sagemaker}` against moto's SageMaker in server mode: weights written with
UpdateEndpointWeightsAndCapacities and read back from DescribeEndpoint, the lease kept in
the endpoint's tags (AddTags / ListTags), rollback, fencing, expiry and ensure_loaded.

moto applies a weight update at once: the endpoint never shows `Updating`. The bounded
wait while it does is tested with botocore's Stubber, which checks each request and each
canned answer against botocore's service model for SageMaker. moto's AddTags appends a
tag whose key exists instead of replacing it as SageMaker does; tests/moto_server.py
makes it replace, as documented.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.stub import Stubber

from gray.controller.errors import (
    EndpointUnreachableError,
    LeaseConflictError,
    LeaseExpiredError,
    MissingExtraError,
    PlanError,
    RouteNotSupportedError,
    RouterError,
    VersionNotLoadedError,
)
from gray.controller.plan.loading import parse_plan
from gray.controller.routers.sagemaker import SageMakerRouter
from gray.controller.routers.sagemaker_record import VariantNames
from gray.controller.routers.sagemaker_spec import SageMakerRouterSpec
from gray.controller.types import Applied, Audience, Lease, RouteSpec
from tests.moto_server import MotoServer

NAMES = VariantNames("fraud-v{version}")


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def sagemaker(moto_server: MotoServer) -> Any:
    return moto_server.client("sagemaker")


@pytest.fixture
def endpoint(moto_server: MotoServer) -> str:
    """A new endpoint: variants fraud-v1 (weight 1), fraud-v2 and fraud-v3 (weight 0)."""
    return moto_server.sagemaker_endpoint("fraud", ("1", "2", "3"), "fraud-v{version}")


def router(client: Any, endpoint: str, **options: Any) -> SageMakerRouter:
    return SageMakerRouter(client, endpoint, NAMES, sleep=lambda _: None, **options)


def weights(client: Any, endpoint: str) -> dict[str, float]:
    """The variants' weights by SageMaker's own account."""
    described = client.describe_endpoint(EndpointName=endpoint)
    return {v["VariantName"]: v.get("CurrentWeight", 0.0) for v in described["ProductionVariants"]}


def count_calls(client: Any, operation: str) -> list[dict[str, Any]]:
    """The parameters of every `operation` call `client` makes from now on."""
    calls: list[dict[str, Any]] = []
    client.meta.events.register(
        f"provide-client-params.sagemaker.{operation}",
        lambda params, **_: calls.append(dict(params)),
    )
    return calls


def test_a_split_is_written_read_back_and_carried(sagemaker: Any, endpoint: str) -> None:
    first = router(sagemaker, endpoint)
    assert first.read() == Applied(RouteSpec("1"), None)  # versions read off the names
    lease = Lease("r-apply", 1)
    for share in (0.05, 0.5, 1.0):
        applied = first.apply(RouteSpec("1", "2", share), lease, ttl=60)
        assert applied == Applied(RouteSpec("1", "2", share), lease)
        assert router(sagemaker, endpoint).read() == applied
        assert weights(sagemaker, endpoint) == {
            "fraud-v1": pytest.approx(1 - share),
            "fraud-v2": pytest.approx(share),
            "fraud-v3": 0.0,
        }


def test_rollback_is_one_weight_update_under_a_higher_epoch(sagemaker: Any, endpoint: str) -> None:
    controller = router(sagemaker, endpoint)
    controller.apply(RouteSpec("1", "2", 0.2), Lease("r-back", 3), ttl=60)
    updates = count_calls(sagemaker, "UpdateEndpointWeightsAndCapacities")
    rolled = router(sagemaker, endpoint).rollback(None)  # the on-call button knows no lease
    assert rolled == Applied(RouteSpec("1", "2", 0.0), Lease("r-back", 4))
    assert len(updates) == 1
    assert {
        d["VariantName"]: d["DesiredWeight"] for d in updates[0]["DesiredWeightsAndCapacities"]
    } == {
        "fraud-v1": 1.0,
        "fraud-v2": 0.0,
        "fraud-v3": 0.0,
    }
    with pytest.raises(LeaseConflictError, match="epoch 4 of rollout 'r-back' is in force"):
        controller.apply(RouteSpec("1", "2", 0.5), Lease("r-back", 3), ttl=60)
    with pytest.raises(LeaseConflictError, match="held by rollout 'r-back'"):
        controller.apply(RouteSpec("1", "2", 0.5), Lease("another", 4), ttl=60)
    with pytest.raises(LeaseConflictError):
        controller.renew(Lease("r-back", 3), 60)
    assert weights(sagemaker, endpoint)["fraud-v2"] == 0.0  # the refused writes wrote nothing
    assert controller.rollback(Lease("r-back", 4)).lease == Lease("r-back", 5)  # repeatable


def test_a_stale_write_that_lands_after_a_rollback_puts_the_rollback_back(
    moto_server: MotoServer, sagemaker: Any, endpoint: str
) -> None:
    """The race read-before-write cannot close: the stale controller passed its check, a
    rollback wrote, then the stale weights landed. Its check after the write restores."""
    stale_client = moto_server.client("sagemaker")
    stale = router(stale_client, endpoint)
    stale.apply(RouteSpec("1", "2", 0.1), Lease("r-race", 1), ttl=60)
    operator = router(sagemaker, endpoint)

    def rollback_first(**_: Any) -> None:
        stale_client.meta.events.unregister(
            "before-call.sagemaker.UpdateEndpointWeightsAndCapacities", rollback_first
        )
        operator.rollback(None)

    stale_client.meta.events.register(
        "before-call.sagemaker.UpdateEndpointWeightsAndCapacities", rollback_first
    )
    with pytest.raises(LeaseConflictError, match="epoch 2 took over while gray wrote"):
        stale.apply(RouteSpec("1", "2", 0.5), Lease("r-race", 1), ttl=60)
    assert weights(sagemaker, endpoint)["fraud-v2"] == 0.0
    assert operator.read() == Applied(RouteSpec("1", "2", 0.0), Lease("r-race", 2))


def test_an_expired_lease_sends_everything_back_to_the_baseline(
    sagemaker: Any, endpoint: str
) -> None:
    clock = Clock()
    controller = router(sagemaker, endpoint, clock=clock)
    lease = Lease("r-expiry", 1)
    controller.apply(RouteSpec("1", "2", 0.3), lease, ttl=30)
    clock.t += 20
    controller.renew(lease, 30)
    clock.t += 29
    assert controller.read().route.weight == 0.3  # renewed: 30 s from the renewal
    clock.t += 2
    with pytest.raises(LeaseExpiredError, match="expired unrenewed"):
        controller.renew(lease, 30)
    assert controller.read() == Applied(RouteSpec("1", "2", 0.0), Lease("r-expiry", 2))
    assert weights(sagemaker, endpoint)["fraud-v2"] == 0.0


def test_promotion_makes_the_candidate_s_variant_the_baseline(
    sagemaker: Any, endpoint: str
) -> None:
    controller = router(sagemaker, endpoint)
    lease = Lease("r-promote", 1)
    controller.apply(RouteSpec("1", "2", 0.5), lease, ttl=60)
    assert controller.apply(RouteSpec("2"), lease) == Applied(RouteSpec("2"), lease)
    assert weights(sagemaker, endpoint) == {"fraud-v1": 0.0, "fraud-v2": 1.0, "fraud-v3": 0.0}
    # The next rollout's candidate is another variant of the same endpoint, no plan edit.
    nxt = Lease("r-next", 2)
    assert controller.apply(RouteSpec("2", "3", 0.1), nxt, ttl=60).route.candidate == "3"
    assert weights(sagemaker, endpoint)["fraud-v3"] == pytest.approx(0.1)


def test_weights_someone_else_wrote_are_read_as_they_are(sagemaker: Any, endpoint: str) -> None:
    controller = router(sagemaker, endpoint)
    lease = Lease("r-drift", 1)
    controller.apply(RouteSpec("1", "2", 0.1), lease, ttl=60)
    sagemaker.update_endpoint_weights_and_capacities(
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[
            {"VariantName": "fraud-v1", "DesiredWeight": 1.0},
            {"VariantName": "fraud-v2", "DesiredWeight": 3.0},
        ],
    )
    assert controller.read() == Applied(RouteSpec("1", "2", 0.75), lease)


def test_ensure_loaded_needs_the_version_s_variant_in_service(
    sagemaker: Any, endpoint: str
) -> None:
    controller = router(sagemaker, endpoint)
    assert controller.ensure_loaded("2") is None  # SageMaker cannot show a preprocessor
    with pytest.raises(VersionNotLoadedError, match="gray does not create variants: deploy v9"):
        controller.ensure_loaded("9")
    with pytest.raises(VersionNotLoadedError, match="no production variant 'fraud-v9'"):
        controller.apply(RouteSpec("1", "9", 0.1), Lease("r-missing", 1), ttl=60)
    assert controller.read() == Applied(RouteSpec("1"), None)  # the refused write took no lease


def test_what_sagemaker_cannot_carry_is_refused_before_any_write(
    sagemaker: Any, endpoint: str
) -> None:
    controller = router(sagemaker, endpoint)
    updates = count_calls(sagemaker, "UpdateEndpointWeightsAndCapacities")
    for route in (
        RouteSpec("1", "2", 0.0, mirror=0.1),
        RouteSpec("1", "2", 0.1, audience=Audience(headers=(("X-Team", ("ml",)),))),
    ):
        with pytest.raises(RouteNotSupportedError):
            controller.apply(route, Lease("r-refused", 1), ttl=60)
    assert updates == []


def test_an_unreachable_api_is_a_router_error(moto_server: MotoServer) -> None:
    from gray.gateway.testing import free_port

    closed = moto_server.client(
        "sagemaker",
        url=f"http://127.0.0.1:{free_port()}",
        connect_timeout=0.5,
        retries={"total_max_attempts": 1},
    )
    with pytest.raises(EndpointUnreachableError, match="the SageMaker API did not answer"):
        router(closed, "fraud").read()


def test_a_missing_endpoint_is_a_router_error_naming_it(sagemaker: Any) -> None:
    with pytest.raises(RouterError, match=r"SageMaker endpoint 'no-such-endpoint'.*refused"):
        router(sagemaker, "no-such-endpoint").read()


# --- waiting while SageMaker updates (moto never shows Updating) -------------------------

ARN = "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/fraud"


def described(status: str, v2: float) -> dict[str, Any]:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return {
        "EndpointName": "fraud",
        "EndpointArn": ARN,
        "EndpointConfigName": "fraud",
        "EndpointStatus": status,
        "CreationTime": now,
        "LastModifiedTime": now,
        "ProductionVariants": [
            {"VariantName": "fraud-v1", "CurrentWeight": 1.0 - v2},
            {"VariantName": "fraud-v2", "CurrentWeight": v2},
        ],
    }


@pytest.fixture
def stubbed(moto_server: MotoServer) -> Iterator[tuple[Any, Stubber]]:
    client = moto_server.client("sagemaker")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def test_a_write_waits_while_the_endpoint_is_updating(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    no_tags: dict[str, Any] = {"Tags": []}
    stub.add_response("describe_endpoint", described("InService", 0.0))
    stub.add_response("list_tags", no_tags)
    stub.add_response("add_tags", {"Tags": []})
    stub.add_response("describe_endpoint", described("Updating", 0.0))  # someone's update
    stub.add_response("describe_endpoint", described("InService", 0.0))
    stub.add_response(
        "update_endpoint_weights_and_capacities",
        {"EndpointArn": ARN},
        {
            "EndpointName": "fraud",
            "DesiredWeightsAndCapacities": [
                {"VariantName": "fraud-v1", "DesiredWeight": 0.75},
                {"VariantName": "fraud-v2", "DesiredWeight": 0.25},
            ],
        },
    )
    stub.add_response("describe_endpoint", described("Updating", 0.0))  # ours
    stub.add_response("describe_endpoint", described("InService", 0.25))
    written = Lease("r-wait", 1).to_dict()
    record = [
        {"Key": f"gray:{k}", "Value": v}
        for k, v in {"format": "1", "rollout": written["rollout_id"], "epoch": "1",
                     "expires": "hold", "baseline": "1", "candidate": "2", "weight": "0.25",
                     "expired": "0"}.items()
    ]  # fmt: skip
    stub.add_response("list_tags", {"Tags": record})  # the check after the write
    stub.add_response("list_tags", {"Tags": record})  # read()
    stub.add_response("describe_endpoint", described("InService", 0.25))
    pauses: list[float] = []
    controller = SageMakerRouter(client, "fraud", NAMES, sleep=pauses.append)
    applied = controller.apply(RouteSpec("1", "2", 0.25), Lease("r-wait", 1))
    assert applied == Applied(RouteSpec("1", "2", 0.25), Lease("r-wait", 1))
    assert len(pauses) == 2


def test_an_endpoint_stuck_updating_is_given_up_on(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    elapsed = [0.0]
    for _ in range(3):
        stub.add_response("describe_endpoint", described("Updating", 0.0))

    def sleep(seconds: float) -> None:
        elapsed[0] += seconds

    controller = SageMakerRouter(
        client,
        "fraud",
        NAMES,
        update_timeout=0.1,
        sleep=sleep,
        monotonic=lambda: elapsed[0],
    )
    with pytest.raises(RouterError, match=r"still Updating after 0.1s"):
        controller.ensure_loaded("2")


# --- the plan block ----------------------------------------------------------------------

PLAN = """\
name: fraud
model: {{name: fraud, baseline: "@champion", candidate: "@challenger"}}
gates:
  - {{metric: error_rate, max_increase: 10%}}
stages:
  - {stage}
router: {router}
"""
ROUTER = '{type: sagemaker, endpoint: fraud-prod, variant: "fraud-v{version}", region: eu-west-1}'


def plan_problems(stage: str, router_block: str = ROUTER) -> list[str]:
    try:
        parse_plan(PLAN.format(stage=stage, router=router_block), "p.yaml")
    except PlanError as error:
        return [problem.render() for problem in error.problems]
    return []


def test_a_sagemaker_plan_block_is_read_with_its_variant_names() -> None:
    plan = parse_plan(PLAN.format(stage="{weight: 0.1%, dwell: 10m}", router=ROUTER), "p.yaml")
    spec = plan.router
    assert isinstance(spec, SageMakerRouterSpec)  # built from it: test_sagemaker_traffic.py
    assert (spec.endpoint, spec.variant_names.name_of("7")) == ("fraud-prod", "fraud-v7")
    assert spec.describe() == "SageMaker endpoint fraud-prod in eu-west-1"
    assert (spec.shows_served_version, spec.shows_preprocessor) == (True, False)


@pytest.mark.parametrize(
    ("stage", "router_block", "expected"),
    [
        (
            "{mirror: 10%, dwell: 10m}",
            ROUTER,
            "p.yaml:6:14: stages[0].mirror: SageMaker cannot mirror 10.00% of requests between "
            "two production variants",
        ),
        (
            "{weight: 5%, audience: {headers: {X-Team: ml}}, dwell: 10m}",
            ROUTER,
            "p.yaml:6:28: stages[0].audience: SageMaker routes each request to a production "
            "variant by weight alone",
        ),
        (
            "{weight: 5%, audience: {cidr: [10.0.0.0/8]}, dwell: 10m}",
            ROUTER,
            "p.yaml:6:28: stages[0].audience: SageMaker routes each request",
        ),
        (
            "{weight: 5%, dwell: 10m}",
            ROUTER.replace("fraud-v{version}", "fraud_v{version}"),
            "p.yaml:7:58: router.variant: gives variant names such as 'fraud_v1', which "
            "SageMaker refuses",
        ),
        (
            "{weight: 5%, dwell: 10m}",
            ROUTER.replace("fraud-prod", "fraud.prod"),
            "p.yaml:7:37: router.endpoint: 'fraud.prod' is not a SageMaker endpoint name",
        ),
    ],
)
def test_what_an_endpoint_cannot_do_is_refused_at_validation(
    stage: str, router_block: str, expected: str
) -> None:
    found = plan_problems(stage, router_block)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_building_without_the_aws_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.test_extras import hide

    hide(monkeypatch, "boto3")
    plan = parse_plan(PLAN.format(stage="{weight: 5%, dwell: 10m}", router=ROUTER), "p.yaml")
    with pytest.raises(MissingExtraError, match=r"pip install 'gray-rollout\[aws\]'"):
        plan.router.build()


def test_a_rollback_on_variants_the_template_does_not_name_writes_nothing(
    moto_server: MotoServer, sagemaker: Any
) -> None:
    endpoint = moto_server.sagemaker_endpoint("other", ("1", "2"), "blue{version}")
    with pytest.raises(VersionNotLoadedError, match="gray does not create variants"):
        router(sagemaker, endpoint).rollback(None)
    arn = sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointArn"]
    assert sagemaker.list_tags(ResourceArn=arn)["Tags"] == []
