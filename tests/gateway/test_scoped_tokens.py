"""Three tokens, three scopes: admin (everything), feedback (labels), stats (read-only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gray.controller.errors import ConfigError
from gray.gateway.settings import (
    FEEDBACK_TOKEN_ENV,
    TOKEN_ENV,
    GatewaySettings,
    token_from_env,
)

from .helpers import ADMIN, TOKEN, row, split_body, wait_until

FEEDBACK = {"Authorization": "Bearer labels-only"}
STATS = {"Authorization": "Bearer read-only"}
SCOPED = {"feedback_token": "labels-only", "stats_token": "read-only"}

READS = [
    ("GET", "/admin/route"),
    ("GET", "/admin/stats"),
    ("GET", "/admin/versions"),
    ("GET", "/metrics"),
    ("GET", "/health?model=baseline"),
]
WRITES = [
    ("PUT", "/admin/route"),
    ("POST", "/admin/route/renew"),
    ("POST", "/admin/rollback"),
    ("POST", "/admin/versions/2/load"),
    ("DELETE", "/admin/versions/2"),
    ("GET", "/admin/samples"),
]


def call(client: Any, method: str, path: str, headers: dict[str, str]) -> int:
    return int(client.request(method, path, headers=headers).status_code)


def test_each_token_opens_its_own_endpoints_and_no_others(make_client: Any) -> None:
    with make_client(**SCOPED) as client:
        for method, path in READS:
            assert call(client, method, path, STATS) != 401, path
            assert call(client, method, path, FEEDBACK) == 401, path
        for method, path in WRITES:
            assert call(client, method, path, STATS) == 401, path
            assert call(client, method, path, FEEDBACK) == 401, path
            assert call(client, method, path, ADMIN) != 401, path
        label = {"request_id": "unknown", "label": 1}
        assert client.post("/feedback", json=label, headers=FEEDBACK).status_code == 404
        refused = client.post("/feedback", json=label, headers=STATS)
        assert refused.status_code == 401
        assert "feedback or the admin token" in refused.json()["message"]
        assert client.post("/feedback", json=label, headers=ADMIN).status_code == 404


def test_only_the_admin_token_may_force_a_version(make_client: Any) -> None:
    with make_client(**SCOPED) as client:
        client.post("/admin/versions/2/load", headers=ADMIN)
        wait_until(
            lambda: (
                client.get("/admin/versions", headers=ADMIN).json()["versions"]["2"]["state"]
                == "ready"
            )
        )
        for headers, answered_by in ((STATS, "1"), (FEEDBACK, "1"), (ADMIN, "2")):
            response = client.post(
                "/invocations", json=split_body(row()), headers={**headers, "X-Model-Version": "2"}
            )
            assert response.headers["X-Model-Version"] == answered_by


def test_tokens_come_from_variables_or_files(tmp_path: Path) -> None:
    secret = tmp_path / "feedback-token"
    secret.write_text("from-a-file\n")
    env = {FEEDBACK_TOKEN_ENV + "_FILE": str(secret), TOKEN_ENV: "admin"}
    assert token_from_env(env, FEEDBACK_TOKEN_ENV) == "from-a-file"
    assert token_from_env(env) == "admin"
    with pytest.raises(ConfigError, match="not both"):
        token_from_env({TOKEN_ENV: "a", TOKEN_ENV + "_FILE": str(secret)})
    with pytest.raises(ConfigError, match="cannot read"):
        token_from_env({TOKEN_ENV + "_FILE": str(tmp_path / "missing")})


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ({"token": TOKEN, "stats_token": TOKEN}, "must differ"),
        ({"token": "a", "stats_token": "b", "feedback_token": "b"}, "must differ"),
        ({"insecure_no_auth": True, "feedback_token": "b"}, "without GRAY_GATEWAY_TOKEN"),
        ({"token": "a", "stats_token": " "}, "GRAY_GATEWAY_STATS_TOKEN is set but empty"),
    ],
)
def test_token_settings_that_would_mislead_are_refused(
    tmp_path: Path, tokens: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        GatewaySettings(model_name="m", state_dir=tmp_path, **tokens).check()


def test_without_the_token_a_malformed_body_is_401_not_parsed(make_client: Any) -> None:
    with make_client(**SCOPED) as client:
        for path in ("/admin/route", "/feedback"):
            method = "PUT" if path == "/admin/route" else "POST"
            answer = client.request(method, path, content=b"{not json", headers=STATS)
            assert answer.status_code == 401, (path, answer.text)


def test_the_schema_names_each_endpoint_s_token_scope(make_client: Any) -> None:
    with make_client() as client:
        paths = client.get("/openapi.json").json()["paths"]
    scopes = {
        (method.upper(), path): operation.get("x-token-scope")
        for path, operations in paths.items()
        for method, operation in operations.items()
    }
    assert scopes[("POST", "/feedback")] == "feedback"
    assert scopes[("GET", "/metrics")] == "stats" and scopes[("GET", "/admin/route")] == "stats"
    assert scopes[("PUT", "/admin/route")] == "admin"
    assert scopes[("POST", "/invocations")] is None and scopes[("GET", "/ping")] is None
