"""The admin API's small promises: clean logs, bounded state, a published schema, 4xx for
client mistakes."""

from __future__ import annotations

import logging
from importlib import metadata
from typing import Any

import pytest

from gray.gateway import models
from gray.gateway.models import printable

from .helpers import ADMIN, wait_until


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


def test_failed_loads_do_not_pile_up_in_the_route_view(
    make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(models, "FAILED_KEPT", 3)  # the same rule, fewer slow failed loads
    with make_client() as client:
        missing = [str(900 + number) for number in range(3 + 2)]
        for version in missing:
            client.post(f"/admin/versions/{version}/load", headers=ADMIN)
        wait_until(
            lambda: (
                "loading" not in client.get("/admin/route", headers=ADMIN).json()["loaded"].values()
            )
        )
        loaded = client.get("/admin/route", headers=ADMIN).json()["loaded"]
        failed = [version for version, state in loaded.items() if state == "failed"]
        assert loaded["1"] == "ready" and len(failed) == 3
        assert missing[-1] in failed and missing[0] not in failed  # the newest are kept


def test_openapi_is_served_and_lists_the_admin_api(make_client: Any) -> None:
    with make_client() as client:
        schema = client.get("/openapi.json")  # public, like /ping
        assert schema.status_code == 200
        assert schema.json()["info"]["version"] == metadata.version("gray-rollout")
        paths = schema.json()["paths"]
        routes = {
            (method.upper(), route.path)
            for route in client.app.routes
            for method in getattr(route, "methods", ()) or ()
            if route.path != "/openapi.json" and method != "HEAD"
        }
        documented = {(m.upper(), p) for p, ops in paths.items() for m in ops}
        # /invocations is answered by plain ASGI before the routes (gateway/invocations.py)
        assert routes | {("POST", "/invocations")} == documented
        body = paths["/invocations"]["post"]["requestBody"]["content"]
        assert {"application/json", "text/csv"} <= set(body)
        assert {"PUT", "GET"} <= {m.upper() for m in paths["/admin/route"]}
        assert "/admin/route/renew" in paths and "/feedback" in paths


@pytest.mark.parametrize("query", ["model=", "model=%0A", "model=@champion"])
def test_health_with_an_unusable_model_is_400(make_client: Any, query: str) -> None:
    with make_client() as client:
        answer = client.get(f"/health?{query}", headers=ADMIN)
        assert answer.status_code == 400 and answer.json()["error"] == "bad_request"
        # Without the parameter it is MLflow's /ping, public.
        assert client.get("/health").status_code == 200
