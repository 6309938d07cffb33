"""Schemathesis over the gateway's own OpenAPI schema, against a real gateway.

Every operation the schema lists is called with generated valid and invalid inputs, once
with the admin token and once without: a client's mistake, a missing token, or anything
the schema allows must never be answered with a 5xx. Seeded (deterministic generation)
and bounded, so a run takes seconds and fails the same way twice.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from gray.gateway.testing import RunningGateway

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 20


@pytest.fixture(scope="module")
def gateway(limited_gateway: RunningGateway) -> RunningGateway:
    """The suite's real gateway (small limits change nothing for one request at a time)."""
    return limited_gateway


@pytest.fixture(scope="module")
def gateway_schema(gateway: RunningGateway) -> Any:
    loaded = schemathesis.openapi.from_url(f"{gateway.url}/openapi.json")
    return loaded


EXAMPLES = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
PUBLIC = ("/ping", "/version", "/invocations", "/openapi.json")


def is_public(case: Any) -> bool:
    return case.path in PUBLIC or (case.path == "/health" and "model" not in (case.query or {}))


def fuzz(schema: Any, gateway: RunningGateway, headers: dict[str, str]) -> tuple[int, list[str]]:
    """Every operation in both generation modes; (requests made, what went wrong)."""
    made = 0
    problems: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @EXAMPLES
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case: Any) -> None:
                nonlocal made
                response = case.call(base_url=gateway.url, headers=headers, timeout=30)
                made += 1
                where = f"{case.method} {case.formatted_path} {case.query or ''}"
                assert response.status_code < 500, (
                    f"{where} -> {response.status_code}: {response.text[:300]}"
                )
                if not headers and not is_public(case):
                    assert response.status_code in (401, 404, 405, 413, 422), (
                        f"{where} without a token -> {response.status_code}"
                    )

            try:
                call()
            except Unsatisfiable:
                continue  # nothing invalid to make: the operation takes no input
            except AssertionError as failure:
                problems.append(f"{operation.label} ({mode.value}): {failure}")
    return made, problems


def test_with_the_admin_token_nothing_is_a_server_error(
    gateway_schema: Any, gateway: RunningGateway
) -> None:
    made, problems = fuzz(gateway_schema, gateway, gateway.headers)
    assert not problems, "\n".join(problems)
    assert made >= 100


def test_without_a_token_nothing_is_a_server_error_and_admin_calls_are_refused(
    gateway_schema: Any, gateway: RunningGateway
) -> None:
    made, problems = fuzz(gateway_schema, gateway, {})
    assert not problems, "\n".join(problems)
    assert made >= 100


def test_the_gateway_is_healthy_after_the_fuzzing(gateway: RunningGateway) -> None:
    assert httpx.get(f"{gateway.url}/ping", timeout=10).status_code == 200
    assert gateway.process.poll() is None
