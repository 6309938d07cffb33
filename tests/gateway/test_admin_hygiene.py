"""The admin API's small promises: clean logs, bounded state, a published schema, 4xx for
client mistakes."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from gray.gateway.models import FAILED_KEPT, ModelManager, printable

from .helpers import ADMIN, wait_until
from .tiny_models import default_loader


def test_control_characters_in_a_path_never_reach_the_log(
    make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "7%0A2026-01-01 00:00:00 INFO gray.gateway: rollback done"
    with make_client() as client, caplog.at_level(logging.DEBUG):
        for method in ("POST", "DELETE"):
            path = f"/admin/versions/{forged}" + ("/load" if method == "POST" else "")
            answer = client.request(method, path, headers=ADMIN)
            assert answer.status_code == 400 and answer.json()["error"] == "bad_version"
    assert not any("\n" in record.getMessage() for record in caplog.records)
    assert printable("9\n\x1b[2J") == "9\\n\\x1b[2J"


def test_failed_loads_do_not_pile_up() -> None:
    manager = ModelManager(default_loader())
    try:
        missing = [str(1000 + n) for n in range(FAILED_KEPT + 10)]
        for version in missing:
            manager.request_load(version)
            manager.wait([version], timeout=10)
        states = manager.states()
        assert sum(state == "failed" for state in states.values()) == FAILED_KEPT
        assert missing[-1] in states and missing[0] not in states  # the newest are kept
    finally:
        manager.shutdown()


def test_failed_loads_do_not_pile_up_in_the_route_view(make_client: Any) -> None:
    with make_client() as client:
        for number in range(FAILED_KEPT + 5):
            client.post(f"/admin/versions/{900 + number}/load", headers=ADMIN)
        wait_until(
            lambda: (
                "loading" not in client.get("/admin/route", headers=ADMIN).json()["loaded"].values()
            )
        )
        loaded = client.get("/admin/route", headers=ADMIN).json()["loaded"]
        assert loaded["1"] == "ready" and len(loaded) <= FAILED_KEPT + 1


def test_openapi_is_served_and_lists_the_admin_api(make_client: Any) -> None:
    with make_client() as client:
        schema = client.get("/openapi.json")  # public, like /ping
        assert schema.status_code == 200
        paths = schema.json()["paths"]
        routes = {
            (method.upper(), route.path)
            for route in client.app.routes
            for method in getattr(route, "methods", ()) or ()
            if route.path != "/openapi.json" and method != "HEAD"
        }
        documented = {(m.upper(), p) for p, ops in paths.items() for m in ops}
        assert routes == documented
        assert {"PUT", "GET"} <= {m.upper() for m in paths["/admin/route"]}
        assert "/admin/route/renew" in paths and "/feedback" in paths


@pytest.mark.parametrize("query", ["model=", "model=%0A", "model=@champion"])
def test_health_with_an_unusable_model_is_400(make_client: Any, query: str) -> None:
    with make_client() as client:
        answer = client.get(f"/health?{query}", headers=ADMIN)
        assert answer.status_code == 400 and answer.json()["error"] == "bad_request"
        # Without the parameter it is MLflow's /ping, public.
        assert client.get("/health").status_code == 200
