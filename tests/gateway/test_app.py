"""The gateway's HTTP API in process, with a tiny loader in place of the registry."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gray.gateway.app import create_app
from gray.gateway.settings import GatewaySettings
from tests.metrics_text import sample

from .helpers import ADMIN, put_route, route, row, split_body, wait_until
from .tiny_models import TinyLoader

PREDICT_HEADERS = {"Content-Type": "application/json"}


def predict(client: Any, body: Any, **headers: str) -> Any:
    return client.post("/invocations", json=body, headers=headers)


def stats(client: Any) -> dict[str, Any]:
    return client.get("/admin/stats", headers=ADMIN).json()


def version_state(client: Any, version: str) -> str | None:
    versions = client.get("/admin/versions", headers=ADMIN).json()["versions"]
    return versions.get(version, {}).get("state")


def load(client: Any, version: str) -> None:
    assert client.post(f"/admin/versions/{version}/load", headers=ADMIN).status_code == 202
    wait_until(lambda: version_state(client, version) == "ready")


# --- the scoring protocol ------------------------------------------------------------------


def test_ping_waits_for_the_baseline_to_load_and_warm(tmp_path: Path, loader: TinyLoader) -> None:
    loader.gate = threading.Event()
    settings_ = GatewaySettings(model_name="tiny", state_dir=tmp_path, token="t")
    with TestClient(create_app(settings_, loader)) as client:
        waiting = client.get("/ping")
        assert waiting.status_code == 503
        assert waiting.json() == {"status": "loading", "versions": {"1": "loading"}}
        assert predict(client, split_body(row())).status_code == 503
        loader.gate.set()
        wait_until(lambda: client.get("/ping").status_code == 200)
        assert client.get("/ping").headers["X-Model-Version"] == "1"
        assert client.get("/health").status_code == 200  # MLflow's alias of /ping, public
        assert client.get("/version").text  # the MLflow version, as MLflow answers


def test_predictions_name_the_version_and_request(make_client: Any) -> None:
    with make_client() as client:
        response = predict(client, split_body(row(20.0), row(1.0)))
        assert response.status_code == 200
        assert response.json() == {"predictions": [1, 0]}
        assert response.headers["X-Model-Version"] == "1"
        assert len(response.headers["X-Request-Id"]) == 32


def test_client_mistakes_are_400_and_counted_as_bad_requests(make_client: Any) -> None:
    with make_client() as client:
        broken = client.post("/invocations", content=b"{oops", headers=PREDICT_HEADERS)
        wrong_type = predict(client, {"inputs": {"amount": ["x"], "count": [1], "country": ["fr"]}})
        missing = predict(client, {"inputs": {"amount": [1.0]}})
        for response in (broken, wrong_type, missing):
            assert response.status_code == 400
            body = response.json()
            assert body["error_code"] == "BAD_REQUEST" and body["message"]
            assert response.headers["X-Model-Version"] == "1"
        counters = stats(client)["versions"]["1"]
        assert (counters["requests"], counters["bad_requests"], counters["errors"]) == (3, 3, 0)


def test_a_model_that_raises_is_a_500_counted_against_its_version(make_client: Any) -> None:
    with make_client(baseline="6") as client:
        assert predict(client, split_body(row(5.0))).status_code == 200
        failed = predict(client, split_body(row(5000.0)))
        assert failed.status_code == 500
        assert "outside the training range" in failed.json()["message"]
        assert failed.headers["X-Model-Version"] == "6"
        counters = stats(client)["versions"]["6"]
        assert (counters["requests"], counters["errors"], counters["bad_requests"]) == (2, 1, 0)
        assert client.get("/ping").status_code == 200  # still serving


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=120) | st.text(max_size=80).map(str.encode))
def test_no_body_crashes_the_gateway_or_looks_like_a_model_error(
    make_client: Any, body: bytes
) -> None:
    with make_client() as client:
        response = client.post("/invocations", content=body, headers=PREDICT_HEADERS)
        assert response.status_code in (200, 400)
        assert client.get("/ping").status_code == 200


# --- routing -------------------------------------------------------------------------------


def test_weights_split_by_routing_key_and_stick(make_client: Any) -> None:
    with make_client() as client:
        assert put_route(client, route(weight=0.3)).status_code == 200
        first = {
            f"u{i}": predict(client, split_body(row()), **{"X-User-Id": f"u{i}"}).headers[
                "X-Model-Version"
            ]
            for i in range(600)
        }
        share = Counter(first.values())["2"] / len(first)
        assert 0.22 < share < 0.38
        again = {
            key: predict(client, split_body(row()), **{"X-User-Id": key}).headers["X-Model-Version"]
            for key in list(first)[:100]
        }
        assert all(first[key] == version for key, version in again.items())
        assert put_route(client, route(weight=0.6)).status_code == 200
        for key in [k for k, v in first.items() if v == "2"][:50]:
            response = predict(client, split_body(row()), **{"X-User-Id": key})
            assert response.headers["X-Model-Version"] == "2"


def test_without_a_routing_header_the_client_address_is_the_key(make_client: Any) -> None:
    with make_client(client_address=("10.1.1.1", 1)) as client:
        put_route(client, route(weight=0.5))
        versions = {
            predict(client, split_body(row())).headers["X-Model-Version"] for _ in range(20)
        }
        assert len(versions) == 1


def test_audience_cidr_keeps_everyone_else_on_the_baseline(make_client: Any) -> None:
    with make_client(client_address=("192.0.2.10", 1)) as client:
        put_route(client, route(weight=1.0, cidr=["10.0.0.0/8"]))
        assert predict(client, split_body(row())).headers["X-Model-Version"] == "1"
    with make_client(client_address=("10.4.4.4", 1)) as client:
        assert client.get("/admin/route", headers=ADMIN).json()["route"]["audience"]["cidr"] == [
            "10.0.0.0/8"
        ]
        assert predict(client, split_body(row())).headers["X-Model-Version"] == "2"


def test_audience_header_rules(make_client: Any) -> None:
    with make_client() as client:
        put_route(client, route(weight=1.0, headers={"X-Team": ["ml", "data"]}))
        assert (
            predict(client, split_body(row()), **{"X-Team": "ml"}).headers["X-Model-Version"] == "2"
        )
        assert (
            predict(client, split_body(row()), **{"X-Team": "ops"}).headers["X-Model-Version"]
            == "1"
        )
        assert predict(client, split_body(row())).headers["X-Model-Version"] == "1"


def test_forcing_a_version_needs_the_token_or_an_override_network(make_client: Any) -> None:
    with make_client(override_cidrs=("10.9.0.0/16",)) as client:
        load(client, "2")
        forced = predict(client, split_body(row()), **{"X-Model-Version": "2", **ADMIN})
        assert forced.status_code == 200 and forced.headers["X-Model-Version"] == "2"
        ignored = predict(client, split_body(row()), **{"X-Model-Version": "2"})
        assert ignored.headers["X-Model-Version"] == "1"
        wrong_token = predict(
            client, split_body(row()), **{"X-Model-Version": "2", "Authorization": "Bearer nope"}
        )
        assert wrong_token.headers["X-Model-Version"] == "1"
        absent = predict(client, split_body(row()), **{"X-Model-Version": "99", **ADMIN})
        assert absent.status_code == 404 and absent.json()["error"] == "version_not_loaded"
        counted = stats(client)
        assert counted["ignored_overrides"] == 2
        assert counted["forced"]["2"]["requests"] == 1
        assert "2" not in counted["versions"]  # forced traffic never enters the gates' counts
    with make_client(client_address=("10.9.3.3", 1), override_cidrs=("10.9.0.0/16",)) as client:
        load(client, "2")
        forced = predict(client, split_body(row()), **{"X-Model-Version": "2"})
        assert forced.headers["X-Model-Version"] == "2"


# --- mirroring -----------------------------------------------------------------------------


def test_mirroring_never_changes_or_delays_the_answer(make_client: Any) -> None:
    rows = [row(amount=float(a)) for a in (1, 8, 12, 30, 95)]
    with make_client() as client:
        plain = [predict(client, split_body(r)).json() for r in rows]
        put_route(client, route(candidate="7", mirror=1.0))  # 7 answers 0 after 0.3 s
        started = time.perf_counter()
        mirrored = [predict(client, split_body(r)) for r in rows]
        elapsed = time.perf_counter() - started
        assert [m.json() for m in mirrored] == plain
        assert {m.headers["X-Model-Version"] for m in mirrored} == {"1"}
        assert elapsed < 0.9  # five mirrored candidates take 1.5 s, off the response path
        wait_until(lambda: stats(client)["shadow"].get("7", {}).get("pairs") == 5, timeout=15)
        shadow = stats(client)["shadow"]["7"]
        expected_disagreements = sum(p["predictions"] != [0] for p in plain)
        assert shadow["disagreements"] == expected_disagreements
        assert shadow["candidate"]["requests"] == 5
        samples = client.get("/admin/samples?kind=shadow", headers=ADMIN).json()["samples"]
        assert len(samples) == 5 and samples[0]["candidate"]["version"] == "7"
        assert {s["baseline"]["version"] for s in samples} == {"1"}


def test_a_mirrored_candidate_that_fails_does_not_touch_the_answer(make_client: Any) -> None:
    with make_client() as client:
        put_route(client, route(candidate="6", mirror=1.0))
        answer = predict(client, split_body(row(amount=5000.0)))
        assert answer.status_code == 200 and answer.headers["X-Model-Version"] == "1"
        wait_until(lambda: "6" in stats(client)["shadow"])
        shadow = stats(client)["shadow"]["6"]
        assert shadow["candidate"]["errors"] == 1 and shadow["pairs"] == 0


def test_a_full_mirror_queue_drops_mirrors_and_counts_them(make_client: Any) -> None:
    with make_client(mirror_queue=1) as client:
        put_route(client, route(candidate="7", mirror=1.0))
        for _ in range(4):
            assert predict(client, split_body(row())).status_code == 200
        assert stats(client)["shadow_dropped"] >= 2


# --- admin ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/route"),
        ("PUT", "/admin/route"),
        ("POST", "/admin/rollback"),
        ("GET", "/admin/stats"),
        ("GET", "/admin/versions"),
        ("POST", "/admin/versions/2/load"),
        ("DELETE", "/admin/versions/2"),
        ("GET", "/admin/samples"),
        ("POST", "/feedback"),
        ("GET", "/metrics"),
        ("GET", "/health?model=baseline"),
    ],
)
def test_admin_calls_need_the_token(make_client: Any, method: str, path: str) -> None:
    with make_client() as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "test-token"}):
            response = client.request(method, path, headers=headers, json={"bad": "body"})
            assert response.status_code == 401, (headers, response.text)
            assert response.json()["error"] == "unauthorized"
            assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"route": {"baseline": "1"}},
        {"route": {"baseline": "1", "weight": 0.1}, "lease": {"rollout_id": "r", "epoch": 1}},
        {"route": {"baseline": "1", "candidate": "1"}, "lease": {"rollout_id": "r", "epoch": 1}},
        {
            "route": {"baseline": "1", "candidate": "2", "weight": 1.5},
            "lease": {"rollout_id": "r", "epoch": 1},
        },
        {"route": {"baseline": "@champion"}, "lease": {"rollout_id": "r", "epoch": 1}},
        {"route": {"baseline": "1"}, "lease": {"rollout_id": "", "epoch": 1}},
        {"route": {"baseline": "1"}, "lease": {"rollout_id": "r", "epoch": -1}},
        {"route": {"baseline": "1", "colour": "red"}, "lease": {"rollout_id": "r", "epoch": 1}},
        {
            "route": {"baseline": "1", "candidate": "2", "audience": {"cidr": ["10.0.0.0/33"]}},
            "lease": {"rollout_id": "r", "epoch": 1},
        },
    ],
)
def test_a_bad_route_body_is_422_and_changes_nothing(
    make_client: Any, body: dict[str, Any]
) -> None:
    with make_client() as client:
        before = client.get("/admin/route", headers=ADMIN).json()
        response = client.put("/admin/route", json=body, headers=ADMIN)
        assert response.status_code == 422, response.text
        assert client.get("/admin/route", headers=ADMIN).json() == before


def test_a_stale_lease_is_409_with_the_lease_in_force(make_client: Any) -> None:
    with make_client() as client:
        assert put_route(client, route(weight=0.1), epoch=5, rollout="a").status_code == 200
        for epoch, rollout in ((4, "a"), (5, "b")):
            refused = put_route(client, route(weight=0.9), epoch=epoch, rollout=rollout)
            assert refused.status_code == 409
            assert refused.json()["error"] == "lease_conflict"
            assert refused.json()["lease"] == {"rollout_id": "a", "epoch": 5}
        assert put_route(client, route(weight=0.2), epoch=6, rollout="b").status_code == 200
        shown = client.get("/admin/route", headers=ADMIN).json()
        assert shown["route"]["weight"] == 0.2 and shown["lease"] == {"rollout_id": "b", "epoch": 6}


def test_a_route_naming_an_unloaded_version_waits_for_it(
    make_client: Any, loader: TinyLoader
) -> None:
    with make_client() as client:
        loader.gate = threading.Event()
        body = {
            "route": route(weight=0.5),
            "lease": {"rollout_id": "r", "epoch": 1},
            "hold": True,
        }
        first = client.put("/admin/route", json=body, headers=ADMIN)
        assert first.status_code == 409 and first.json()["error"] == "version_not_ready"
        assert first.json()["versions"]["2"]["state"] == "loading"
        assert client.get("/admin/route", headers=ADMIN).json()["route"]["candidate"] is None
        loader.gate.set()
        wait_until(
            lambda: (
                client.get("/admin/versions", headers=ADMIN).json()["versions"]["2"]["state"]
                == "ready"
            )
        )
        second = client.put("/admin/route", json=body, headers=ADMIN)
        assert second.status_code == 200
        assert second.json()["loaded"] == {"1": "ready", "2": "ready"}


def test_a_route_naming_a_broken_version_reports_why(make_client: Any) -> None:
    with make_client() as client:
        body = {
            "route": route(candidate="3", weight=0.5),
            "lease": {"rollout_id": "r", "epoch": 1},
            "hold": True,
        }
        client.put("/admin/route", json=body, headers=ADMIN)
        wait_until(
            lambda: (
                client.get("/admin/versions", headers=ADMIN).json()["versions"]["3"]["state"]
                == "failed"
            )
        )
        versions = client.get("/admin/versions", headers=ADMIN).json()["versions"]
        assert "warm-up" in versions["3"]["reason"]


def test_rollback_sends_everything_to_the_baseline_under_a_new_epoch(make_client: Any) -> None:
    with make_client() as client:
        put_route(client, route(weight=1.0, mirror=0.0), epoch=3, rollout="rollout-7")
        assert predict(client, split_body(row())).headers["X-Model-Version"] == "2"
        rolled = client.post("/admin/rollback", json={"lease": None}, headers=ADMIN)
        assert rolled.status_code == 200
        assert rolled.json() == {
            "route": route(weight=0.0),
            "lease": {"rollout_id": "rollout-7", "epoch": 4},
        }
        assert predict(client, split_body(row())).headers["X-Model-Version"] == "1"
        again = client.post(
            "/admin/rollback", json={"lease": {"rollout_id": "oncall", "epoch": 10}}, headers=ADMIN
        )
        assert again.json()["lease"] == {"rollout_id": "oncall", "epoch": 11}
        assert client.post("/admin/rollback", headers=ADMIN).json()["lease"]["epoch"] == 12
        stale = put_route(client, route(weight=1.0), epoch=3, rollout="rollout-7")
        assert stale.status_code == 409


def test_versions_load_and_unload_but_not_while_routed(make_client: Any) -> None:
    with make_client() as client:
        accepted = client.post("/admin/versions/5/load", headers=ADMIN)
        assert accepted.status_code == 202 and accepted.json()["version"] == "5"
        wait_until(
            lambda: (
                client.get("/admin/versions", headers=ADMIN)
                .json()["versions"]
                .get("5", {})
                .get("state")
                == "ready"
            )
        )
        in_use = client.delete("/admin/versions/1", headers=ADMIN)
        assert in_use.status_code == 409 and in_use.json()["error"] == "version_in_use"
        put_route(client, route(candidate="5", weight=0.5))
        assert client.delete("/admin/versions/5", headers=ADMIN).status_code == 409
        client.post("/admin/rollback", headers=ADMIN)
        assert client.delete("/admin/versions/5", headers=ADMIN).status_code == 200
        assert client.delete("/admin/versions/5", headers=ADMIN).status_code == 404
        assert "5" not in client.get("/admin/route", headers=ADMIN).json()["loaded"]


def test_health_reports_the_last_minute_of_a_version(make_client: Any) -> None:
    with make_client(baseline="6") as client:
        for amount in (5.0, 5.0, 5000.0, 5.0):
            predict(client, split_body(row(amount)))
        health = client.get("/health?model=baseline", headers=ADMIN)
        assert health.status_code == 200
        body = health.json()
        assert body["version"] == "6" and body["loaded"] is True
        assert body["requests"] == 4 and body["error_rate"] == pytest.approx(0.25)
        assert body["mean_latency_seconds"] > 0 and body["p99_latency_seconds"] > 0
        assert client.get("/health?model=candidate", headers=ADMIN).status_code == 404
        absent = client.get("/health?model=42", headers=ADMIN)
        assert absent.status_code == 503 and absent.json()["state"] == "absent"


def test_feedback_scores_labels_per_version(make_client: Any) -> None:
    with make_client() as client:
        put_route(client, route(weight=1.0))
        ids = [
            predict(client, split_body(row(amount))).headers["X-Request-Id"]
            for amount in (20.0, 30.0, 1.0)
        ]  # version 2 (factor 0.5) answers 1, 1, 0
        single = client.post("/feedback", json={"request_id": ids[0], "label": 1}, headers=ADMIN)
        assert single.json() == {"labelled": 1, "correct": 1}
        batch = client.post(
            "/feedback",
            json={
                "labels": [
                    {"request_id": ids[1], "label": 0},
                    {"request_id": ids[2], "label": "0"},
                    {"request_id": ids[0], "label": 1},
                    {"request_id": "nope", "label": 1},
                ]
            },
            headers=ADMIN,
        )
        assert batch.json() == {
            "accepted": 2,
            "unknown": ["nope"],
            "duplicate": [ids[0]],
            "misshapen": [],
        }
        counters = stats(client)["versions"]["2"]
        assert (counters["labelled"], counters["correct"]) == (3, 2)
        assert (
            client.post(
                "/feedback", json={"request_id": "x", "label": 1}, headers=ADMIN
            ).status_code
            == 404
        )
        assert (
            client.post(
                "/feedback", json={"request_id": ids[0], "label": 1}, headers=ADMIN
            ).status_code
            == 409
        )
        assert (
            client.post("/feedback", json={"request_id": ids[0]}, headers=ADMIN).status_code == 422
        )


def test_metrics_page_is_prometheus_text(make_client: Any) -> None:
    with make_client() as client:
        predict(client, split_body(row()))
        page = client.get("/metrics", headers=ADMIN)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert sample(page.text, "gray_requests_total", version="1", traffic="live") == 1


def test_stats_carry_slo_edges_and_the_route(make_client: Any) -> None:
    with make_client(slo_edges=(0.1,)) as client:
        predict(client, split_body(row()))
        body = stats(client)
        assert body["slo_edges"] == [0.1]
        assert body["versions"]["1"]["slow"] == [[0.1, 0]]
        assert body["versions"]["1"]["latency_buckets"][-1] == ["+Inf", 1]
        assert body["route"]["route"]["baseline"] == "1"
        assert body["taken_at"] >= body["started_at"]


def test_a_restarted_gateway_restores_the_route_and_lease(make_client: Any, tmp_path: Path) -> None:
    state = tmp_path / "kept"
    with make_client(state_dir=state) as client:
        put_route(client, route(weight=0.25, mirror=0.5, cidr=["127.0.0.0/8"]), epoch=4)
        written = client.get("/admin/route", headers=ADMIN).json()
    saved = json.loads((state / "route.json").read_text())
    assert saved["route"] == written["route"] and saved["model"] == "tiny"
    with make_client(state_dir=state, baseline="5") as client:  # --baseline no longer applies
        restored = client.get("/admin/route", headers=ADMIN).json()
        assert restored["route"] == written["route"] and restored["lease"] == written["lease"]
        assert restored["loaded"] == {"1": "ready", "2": "ready"}  # /ping waited for both


def test_insecure_mode_opens_the_admin_api_but_not_overrides(make_client: Any) -> None:
    with make_client(token=None, insecure_no_auth=True) as client:
        assert client.get("/admin/route").status_code == 200
        put_route(client, route(weight=0.0))
        forced = predict(client, split_body(row()), **{"X-Model-Version": "2"})
        assert forced.headers["X-Model-Version"] == "1"
