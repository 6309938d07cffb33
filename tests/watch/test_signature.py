"""MLflow's signed registry webhooks: verified as MLflow signs them, refused with a 4xx and a
JSON reason when unsigned, badly signed, stale or replayed; the listener over real HTTP."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from mlflow.webhooks.constants import (
    WEBHOOK_DELIVERY_ID_HEADER,
    WEBHOOK_SIGNATURE_HEADER,
    WEBHOOK_TIMESTAMP_HEADER,
)
from mlflow.webhooks.delivery import _generate_hmac_signature

from gray.controller.errors import WebhookRefusedError
from gray.controller.watch.listener import ListenerSettings, WebhookListener
from gray.controller.watch.signature import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ReplayGuard,
    sign,
    verify,
)

SECRET = "watch-secret"
HTTP = httpx.Client(timeout=10.0)  # one client: building one costs 0.1 s


def alias_created(name: str = "fraud", alias: str = "challenger", version: str = "3") -> str:
    """A delivery body as MLflow's delivery builds it (json.dumps of the envelope)."""
    return json.dumps(
        {
            "entity": "model_version_alias",
            "action": "created",
            "timestamp": "2026-11-30T12:00:00+00:00",
            "data": {"name": name, "alias": alias, "version": version},
        }
    )


def signed_by_mlflow(body: str, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    """The headers MLflow sends, its own signing function making the signature."""
    delivery_id = str(uuid.uuid4())
    timestamp = str(int(time.time() if at is None else at))
    return {
        "Content-Type": "application/json",
        WEBHOOK_DELIVERY_ID_HEADER: delivery_id,
        WEBHOOK_TIMESTAMP_HEADER: timestamp,
        WEBHOOK_SIGNATURE_HEADER: _generate_hmac_signature(secret, delivery_id, timestamp, body),
    }


def test_header_names_and_signature_are_mlflows() -> None:
    assert (SIGNATURE_HEADER, TIMESTAMP_HEADER, DELIVERY_ID_HEADER) == (
        WEBHOOK_SIGNATURE_HEADER,
        WEBHOOK_TIMESTAMP_HEADER,
        WEBHOOK_DELIVERY_ID_HEADER,
    )
    body = alias_created()
    assert sign(SECRET, "id-1", "1700000000", body.encode()) == _generate_hmac_signature(
        SECRET, "id-1", "1700000000", body
    )


def test_a_delivery_mlflow_signed_is_accepted_once() -> None:
    body = alias_created()
    headers = signed_by_mlflow(body)
    guard = ReplayGuard()
    delivery = verify(SECRET, headers, body.encode(), guard)
    assert delivery.delivery_id == headers[WEBHOOK_DELIVERY_ID_HEADER]
    with pytest.raises(WebhookRefusedError) as replayed:
        verify(SECRET, headers, body.encode(), guard)
    assert replayed.value.status == 409 and "replayed" in replayed.value.message


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        (
            lambda h, b: ({k: v for k, v in h.items() if k != WEBHOOK_SIGNATURE_HEADER}, b),
            401,
            "unsigned",
        ),
        (
            lambda h, b: ({k: v for k, v in h.items() if k != WEBHOOK_DELIVERY_ID_HEADER}, b),
            401,
            "missing",
        ),
        (lambda h, b: (h, b.replace(b'"3"', b'"4"')), 401, "bad signature"),
        (
            lambda h, b: (
                {**h, WEBHOOK_SIGNATURE_HEADER: "v2," + h[WEBHOOK_SIGNATURE_HEADER][3:]},
                b,
            ),
            401,
            "bad signature",
        ),
        (lambda h, b: ({**h, WEBHOOK_SIGNATURE_HEADER: "v1,not base64!"}, b), 401, "bad signature"),
        (lambda h, b: ({**h, WEBHOOK_TIMESTAMP_HEADER: "soon"}, b), 400, "Unix seconds"),
    ],
    ids=["unsigned", "no-delivery-id", "tampered-body", "other-version", "garbage", "timestamp"],
)
def test_bad_deliveries_are_refused(change, status: int, words: str) -> None:  # type: ignore[no-untyped-def]
    body = alias_created().encode()
    headers, body = change(signed_by_mlflow(body.decode()), body)
    with pytest.raises(WebhookRefusedError) as refused:
        verify(SECRET, headers, body, ReplayGuard())
    assert refused.value.status == status and words in refused.value.message


def test_another_secret_and_the_clock_refuse() -> None:
    body = alias_created()
    with pytest.raises(WebhookRefusedError, match="bad signature"):
        verify(SECRET, signed_by_mlflow(body, secret="other"), body.encode(), ReplayGuard())
    now = time.time()
    for at, words in ((now - 301, "old"), (now + 301, "in the future")):
        with pytest.raises(WebhookRefusedError, match=words) as stale:
            verify(SECRET, signed_by_mlflow(body, at=at), body.encode(), ReplayGuard(), now=now)
        assert stale.value.status == 401
    # Inside the window either way, it passes.
    verify(SECRET, signed_by_mlflow(body, at=now - 290), body.encode(), ReplayGuard(), now=now)


class Nudges:
    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.events: list[dict[str, object]] = []


@pytest.fixture(scope="module")
def listener() -> Iterator[tuple[str, Nudges]]:
    nudges = Nudges()
    running = WebhookListener(
        "127.0.0.1",
        0,
        ListenerSettings(SECRET, "fraud", "challenger"),
        nudges.reasons.append,
        lambda: {"model": "fraud", "last_decision": None},
        nudges.events.append,
    ).start()
    try:
        yield running.address, nudges
    finally:
        running.stop()


def test_listener_nudges_on_the_watched_alias_only(listener: tuple[str, Nudges]) -> None:
    url, nudges = listener
    body = alias_created()
    answer = HTTP.post(f"{url}/webhook", content=body, headers=signed_by_mlflow(body))
    assert answer.status_code == 202, answer.text
    assert len(nudges.reasons) == 1
    for other in (alias_created(alias="champion"), alias_created(name="churn")):
        answer = HTTP.post(f"{url}/webhook", content=other, headers=signed_by_mlflow(other))
        assert (
            answer.status_code == 200 and "not the watched @challenger" in answer.json()["ignored"]
        )
    tag = json.dumps({"entity": "model_version_tag", "action": "set", "data": {}})
    answer = HTTP.post(f"{url}/webhook", content=tag, headers=signed_by_mlflow(tag))
    assert answer.status_code == 200 and "model_version_tag.set" in answer.json()["ignored"]
    assert len(nudges.reasons) == 1


def test_listener_refuses_with_a_json_reason(listener: tuple[str, Nudges]) -> None:
    url, nudges = listener
    body = alias_created()
    headers = signed_by_mlflow(body)
    assert HTTP.post(f"{url}/webhook", content=body, headers=headers).status_code == 202
    replay = HTTP.post(f"{url}/webhook", content=body, headers=headers)
    assert replay.status_code == 409 and replay.json() == {
        "ok": False,
        "reason": f"replayed delivery: {headers[WEBHOOK_DELIVERY_ID_HEADER]} was already accepted",
    }
    unsigned = HTTP.post(
        f"{url}/webhook", content=body, headers={"Content-Type": "application/json"}
    )
    assert unsigned.status_code == 401 and "unsigned" in unsigned.json()["reason"]
    not_json = b"not json"
    answer = HTTP.post(f"{url}/webhook", content=not_json, headers=signed_by_mlflow("not json"))
    assert answer.status_code == 400 and "not JSON" in answer.json()["reason"]
    huge = HTTP.post(f"{url}/webhook", content=b"x" * (1024 * 1024 + 1))
    assert huge.status_code == 413 and huge.json()["ok"] is False
    assert HTTP.post(f"{url}/other", content=body).status_code == 404
    assert HTTP.put(f"{url}/webhook", content=body).status_code == 405
    health = HTTP.get(f"{url}/health")
    assert health.status_code == 200 and health.json()["model"] == "fraud"
    refused = [e for e in nudges.events if e["event"] == "webhook_refused"]
    assert {e["status"] for e in refused} >= {409, 401, 413}
