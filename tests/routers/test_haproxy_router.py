"""The HAProxy router against a real HAProxy (servers on closed ports: weights and leases
only; traffic through it is in test_haproxy_traffic.py). One HAProxy per module, reset
before each test."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from gray.controller.errors import (
    ConfigError,
    LeaseConflictError,
    LeaseExpiredError,
    RouteNotSupportedError,
    RouterError,
    RouteVerificationError,
    VersionNotLoadedError,
)
from gray.controller.operator import rollback_endpoint
from gray.controller.routers.haproxy import HaproxyRouter
from gray.controller.routers.haproxy_config import config_snippet
from gray.controller.routers.haproxy_record import LeaseRecord, weights_for
from gray.controller.routers.haproxy_runtime import RuntimeAddress, RuntimeApi
from gray.controller.types import Audience, Lease, RouteSpec
from gray.gateway.testing import free_port
from tests.haproxy_server import HAPROXY, RunningHaproxy, start_haproxy

ROLES = {"baseline": "baseline", "candidate": "candidate"}
FIVE = RouteSpec(baseline="1", candidate="2", weight=0.05)


@pytest.fixture(scope="module")
def idle_haproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHaproxy]:
    servers = {"baseline": f"127.0.0.1:{free_port()}", "candidate": f"127.0.0.1:{free_port()}"}
    with start_haproxy(tmp_path_factory.mktemp("haproxy"), servers) as proxy:
        yield proxy


@pytest.fixture
def haproxy(idle_haproxy: RunningHaproxy) -> RunningHaproxy:
    idle_haproxy.reset()
    return idle_haproxy


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def router_for(
    proxy: RunningHaproxy, clock: Clock | None = None, tcp: bool = False
) -> HaproxyRouter:
    return HaproxyRouter(
        proxy.runtime_tcp if tcp else proxy.runtime_unix,
        proxy.backend,
        ROLES,
        lease_map=proxy.lease_map,
        **({"clock": clock} if clock else {}),
    )


def weights(proxy: RunningHaproxy) -> dict[str, int]:
    return {n: s.user_weight for n, s in proxy.api().servers_state(proxy.backend).items()}


def test_a_route_is_written_as_weights_and_read_back(haproxy: RunningHaproxy) -> None:
    router = router_for(haproxy, tcp=True)
    applied = router.apply(FIVE, Lease("r1", 1), ttl=60)
    assert applied.route == FIVE and applied.lease == Lease("r1", 1)
    assert weights(haproxy) == {"baseline": 256, "candidate": 13}  # 13/269 = 4.8 %
    assert router_for(haproxy).read() == applied  # another controller reads the same


def test_weights_changed_behind_gray_are_read_as_they_are(haproxy: RunningHaproxy) -> None:
    router = router_for(haproxy)
    router.apply(FIVE, Lease("r1", 1), ttl=60)
    haproxy.api().set_weight(haproxy.backend, "candidate", 128)
    seen = router.read()
    assert seen.route.weight == pytest.approx(128 / 384)
    assert not seen.route.same_split(FIVE)


def test_a_write_haproxy_does_not_keep_is_a_verification_error(haproxy: RunningHaproxy) -> None:
    """A server in maintenance keeps its user weight; a weight HAProxy silently caps would
    not be: the read-back compares what `show servers state` says with what was written."""
    router = router_for(haproxy)
    api = haproxy.api()
    original = api.set_weights

    def lossy(backend: str, weights: Sequence[tuple[str, int]]) -> None:
        # An HAProxy that keeps another value.
        original(backend, [(server, max(0, weight - 1)) for server, weight in weights])

    api.set_weights = lossy  # type: ignore[method-assign]
    router.api = api
    with pytest.raises(RouteVerificationError, match="after gray wrote 256 and 13"):
        router.apply(FIVE, Lease("r1", 1), ttl=60)


def test_a_stale_epoch_refuses_itself_before_any_weight(haproxy: RunningHaproxy) -> None:
    old, new = router_for(haproxy), router_for(haproxy)
    old.apply(FIVE, Lease("r1", 1), ttl=60)
    new.rollback(Lease("r1", 1))  # epoch 2: the on-call button
    with pytest.raises(LeaseConflictError, match="epoch 2 of rollout 'r1' is in force"):
        old.apply(RouteSpec("1", "2", weight=0.5), Lease("r1", 1), ttl=60)
    assert weights(haproxy) == {"baseline": 256, "candidate": 0}
    with pytest.raises(LeaseConflictError, match="nothing to renew"):
        old.renew(Lease("r1", 1), 60)
    with pytest.raises(LeaseConflictError, match="held by rollout 'r1', not 'r2'"):
        old.apply(FIVE, Lease("r2", 2), ttl=60)


def test_a_rollback_landing_between_check_and_write_keeps_its_weights(
    haproxy: RunningHaproxy,
) -> None:
    """The window read-before-write leaves: a rollback written after the stale writer's
    check and before its weights. The stale writer's check after the write finds the newer
    lease, puts its weights back and refuses."""
    stale, operator = router_for(haproxy), router_for(haproxy)
    stale.apply(FIVE, Lease("r1", 1), ttl=60)
    api = stale.api
    original = api.set_weights
    raced = []

    def racing(backend: str, weights: Sequence[tuple[str, int]]) -> None:
        if not raced:
            raced.append(operator.rollback(None))  # lands after stale's check
        original(backend, weights)

    api.set_weights = racing  # type: ignore[method-assign]
    with pytest.raises(LeaseConflictError, match="took over while gray wrote"):
        stale.apply(RouteSpec("1", "2", weight=0.5), Lease("r1", 1), ttl=60)
    assert raced[0].lease == Lease("r1", 2)
    assert weights(haproxy) == {"baseline": 256, "candidate": 0}
    assert operator.read().route.same_split(FIVE.rolled_back())


def test_a_rollback_overwritten_by_a_stale_takeover_writes_itself_again(
    haproxy: RunningHaproxy,
) -> None:
    """Two writers that read epoch 1 at once: a stale controller taking epoch 2, and a
    rollback. When the stale lease record lands after the rollback's, the rollback finds
    it after its write and writes again above it; the candidate ends with no traffic."""
    controller, operator = router_for(haproxy), router_for(haproxy)
    controller.apply(FIVE, Lease("r1", 1), ttl=60)
    api = operator.api
    original = api.set_weights
    stale = LeaseRecord(Lease("r2", 2), RouteSpec("1", "2", weight=0.5), None, {})
    raced: list[bool] = []

    def racing(backend: str, weights: Sequence[tuple[str, int]]) -> None:
        if not raced:
            raced.append(True)
            api.map_put(haproxy.lease_map, haproxy.backend, stale.encode())  # lands late
            original(backend, [("candidate", 256)])  # with its weights, before the rollback's
        original(backend, weights)

    api.set_weights = racing  # type: ignore[method-assign]
    rolled = operator.rollback(Lease("ops", 1))
    api.set_weights = original  # type: ignore[method-assign]
    assert rolled.lease == Lease("ops", 3)
    assert controller.read().lease == Lease("ops", 3)
    assert weights(haproxy) == {"baseline": 256, "candidate": 0}


def test_rollback_is_baseline_only_under_a_higher_epoch(haproxy: RunningHaproxy) -> None:
    router = router_for(haproxy)
    router.apply(RouteSpec("1", "2", weight=0.8), Lease("r1", 4), ttl=None)
    assert weights(haproxy) == {"baseline": 64, "candidate": 256}
    rolled = router.rollback(None)
    assert rolled.lease == Lease("r1", 5)
    assert rolled.route == RouteSpec("1", "2", weight=0.0)
    assert weights(haproxy) == {"baseline": 256, "candidate": 0}
    assert router.rollback(Lease("ops", 9)).lease == Lease("ops", 10)  # repeatable


def test_gray_rollback_works_on_a_backend_gray_never_wrote(haproxy: RunningHaproxy) -> None:
    """A restarted HAProxy has no lease record; the on-call button must still work."""
    haproxy.api().set_weight(haproxy.backend, "candidate", 256)
    router = router_for(haproxy)
    seen = router.read()
    assert (seen.route.baseline, seen.route.weight, seen.lease) == ("", 0.5, None)
    applied, _ = rollback_endpoint(router, None)
    assert applied.lease is not None and applied.lease.epoch == 1
    assert weights(haproxy) == {"baseline": 256, "candidate": 0}


def test_a_promoted_candidate_keeps_its_server(haproxy: RunningHaproxy) -> None:
    router = router_for(haproxy)
    router.apply(RouteSpec("1", "2", weight=0.5), Lease("r1", 1), ttl=None)
    router.apply(RouteSpec("2"), Lease("r1", 1))  # promotion: v2 is the baseline now
    assert weights(haproxy) == {"baseline": 0, "candidate": 256}
    # The next rollout: v2 stays where it runs, v3 takes the freed server.
    router.apply(RouteSpec("2", "3", weight=0.2), Lease("r2", 2), ttl=None)
    assert weights(haproxy) == {"baseline": 64, "candidate": 256}


def test_an_expired_lease_is_ended_by_the_next_look(haproxy: RunningHaproxy) -> None:
    clock = Clock()
    router = router_for(haproxy, clock)
    router.apply(FIVE, Lease("r1", 3), ttl=30)
    clock.now += 20
    router.renew(Lease("r1", 3), 30)
    clock.now += 29
    assert router.read().route == FIVE  # renewed: not yet expired
    clock.now += 2
    with pytest.raises(LeaseExpiredError, match="expired unrenewed"):
        router.renew(Lease("r1", 3), 30)
    assert weights(haproxy) == {"baseline": 256, "candidate": 0}
    assert router.read().lease == Lease("r1", 4)
    with pytest.raises(LeaseExpiredError):
        router.apply(FIVE, Lease("r1", 3), ttl=30)


@pytest.mark.parametrize(
    ("route", "message"),
    [
        (RouteSpec("1", "2", mirror=1.0), "HAProxy cannot mirror requests"),
        (RouteSpec("1", "2", weight=0.1, audience=Audience(cidr=("10.0.0.0/8",))), "audience"),
        (RouteSpec("1", "2", weight=0.001), "no finer than 0.39%"),
        (RouteSpec("1", "2", weight=0.999), "no finer than"),
    ],
)
def test_routes_haproxy_cannot_carry_are_refused_unwritten(
    haproxy: RunningHaproxy, route: RouteSpec, message: str
) -> None:
    router = router_for(haproxy)
    with pytest.raises(RouteNotSupportedError, match=message) as raised:
        router.apply(route, Lease("r1", 1), ttl=60)
    assert raised.value.exit_code == 2
    assert haproxy.api().map_entries(haproxy.lease_map) == {}


def test_weights_are_as_fine_as_haproxy_allows() -> None:
    for share in (0.004, 0.01, 0.05, 0.2, 0.5, 0.75, 0.99):
        got = weights_for(RouteSpec("1", "2", weight=share))
        assert max(got.baseline, got.candidate) == 256
        assert got.share == pytest.approx(share, abs=1 / 257 / 2 + 1e-9)


def test_ensure_loaded_checks_the_servers_are_up(haproxy: RunningHaproxy) -> None:
    router = router_for(haproxy)
    assert router.ensure_loaded("2") is None
    haproxy.api().expect_empty(f"set server {haproxy.backend}/candidate state maint")
    with pytest.raises(VersionNotLoadedError, match="'candidate' for v2 is not up"):
        router.ensure_loaded("2")
    wrong = HaproxyRouter(
        haproxy.runtime_unix,
        haproxy.backend,
        {"baseline": "baseline", "candidate": "nope"},
        lease_map=haproxy.lease_map,
    )
    with pytest.raises(VersionNotLoadedError, match="no server 'nope'"):
        wrong.ensure_loaded("2")


def test_a_missing_backend_or_map_is_named(haproxy: RunningHaproxy) -> None:
    no_backend = HaproxyRouter(haproxy.runtime_unix, "nope", ROLES, lease_map=haproxy.lease_map)
    with pytest.raises(RouterError, match="no backend 'nope'"):
        no_backend.ensure_loaded("1")
    no_map = HaproxyRouter(haproxy.runtime_unix, haproxy.backend, ROLES, lease_map="/x.map")
    with pytest.raises(RouterError, match=r"cannot show map '/x\.map'.*the config must load it"):
        no_map.apply(FIVE, Lease("r1", 1), ttl=60)


def test_an_unreachable_runtime_api_is_a_router_error(tmp_path: Path) -> None:
    router = HaproxyRouter(f"unix://{tmp_path}/absent.sock", "models", ROLES)
    router.api._sleep = lambda _: None  # type: ignore[attr-defined]
    with pytest.raises(RouterError, match="did not answer 'show' after 3 attempts"):
        router.read()


@pytest.mark.parametrize("text", ["http://x:1", "unix://host/x", "tcp://host", "/run/x.sock"])
def test_a_bad_runtime_address_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="not unix:///path/to/socket or tcp://host:port"):
        RuntimeAddress.parse(text)


def test_commands_cannot_be_smuggled_into_a_name() -> None:
    api = RuntimeApi(RuntimeAddress.parse("unix:///nonexistent"))
    with pytest.raises(RouterError, match="newline or ';'"):
        api.set_weight("models", "candidate; shutdown sessions", 1)
    with pytest.raises(RouterError, match="newline or ';'"):
        api.set_weights("models", [("baseline", 1), ("candidate\nshutdown sessions", 1)])


def test_a_record_gray_did_not_write_is_refused() -> None:
    with pytest.raises(RouterError, match="not a lease record"):
        LeaseRecord.decode("hello", "map m key 'models'")
    with pytest.raises(RouterError, match="unreadable lease record"):
        LeaseRecord.decode("v=1&rollout=r", "map m key 'models'")


def test_the_snippet_is_a_valid_haproxy_config(tmp_path: Path) -> None:
    lease_map = tmp_path / "gray-leases.map"
    lease_map.touch()
    snippet = config_snippet(
        "fraud",
        {"v1": "10.0.0.1:8080", "v2": "10.0.0.2:8080"},
        candidate="v2",
        lease_map=str(lease_map),
        runtime_socket=str(tmp_path / "admin.sock"),
    )
    assert "hash-type consistent" in snippet and "balance hdr(X-Routing-Key)" in snippet
    assert "server v2 10.0.0.2:8080 weight 0" in snippet
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        "defaults\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n" + snippet
    )
    checked = subprocess.run([HAPROXY, "-c", "-f", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
