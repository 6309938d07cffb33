"""Verifying a registry webhook exactly as MLflow signs it (mlflow/webhooks/delivery.py).

MLflow sends three headers with every delivery: `X-MLflow-Delivery-Id` (a uuid4),
`X-MLflow-Timestamp` (Unix seconds) and, when the webhook has a secret,
`X-MLflow-Signature`: `v1,` and the base64 HMAC-SHA256, keyed with the secret, of
`{delivery_id}.{timestamp}.{body}`, body being the exact bytes posted. A delivery is
accepted only when all three are present, the signature matches (compared in constant
time), the timestamp lies within `REPLAY_WINDOW_SECONDS` of now either way (MLflow's own
verification example allows 300 s), and its delivery id was not accepted before within
that window: a captured delivery cannot be sent again, and an older one fails the clock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from gray.controller.errors import WebhookRefusedError

# Header names and signature version as MLflow's mlflow/webhooks/constants.py spells them.
SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
SIGNATURE_VERSION = "v1"
REPLAY_WINDOW_SECONDS = 300.0
MAX_DELIVERY_ID_LENGTH = 200  # MLflow's are 36 characters


@dataclass(frozen=True)
class Delivery:
    delivery_id: str
    timestamp: int


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The `X-MLflow-Signature` value MLflow would send for this delivery."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


class ReplayGuard:
    """Delivery ids accepted within the replay window, forgotten once the clock refuses them."""

    def __init__(self, window: float = REPLAY_WINDOW_SECONDS) -> None:
        self.window = window
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def admit(self, delivery_id: str, now: float) -> bool:
        """Record `delivery_id`; False when it was admitted before (a replay)."""
        with self._lock:
            # Older than twice the window: the timestamp check refuses it anyway.
            expired = [k for k, at in self._seen.items() if now - at > 2 * self.window]
            for key in expired:
                del self._seen[key]
            if delivery_id in self._seen:
                return False
            self._seen[delivery_id] = now
            return True


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    guard: ReplayGuard,
    now: float | None = None,
) -> Delivery:
    """The delivery, once signed by `secret`, fresh and new; raises WebhookRefusedError with
    the status (401 unsigned or badly signed or stale, 409 replayed) and the reason."""
    now = time.time() if now is None else now
    lowered = {k.lower(): v for k, v in headers.items()}
    signature = lowered.get(SIGNATURE_HEADER.lower())
    timestamp = lowered.get(TIMESTAMP_HEADER.lower())
    delivery_id = lowered.get(DELIVERY_ID_HEADER.lower())
    missing = [
        name
        for name, value in (
            (SIGNATURE_HEADER, signature),
            (TIMESTAMP_HEADER, timestamp),
            (DELIVERY_ID_HEADER, delivery_id),
        )
        if not value
    ]
    if missing:
        raise WebhookRefusedError(
            401,
            f"unsigned delivery: missing {', '.join(missing)}; give the MLflow webhook the "
            "same secret as the watcher",
        )
    assert signature is not None and timestamp is not None and delivery_id is not None
    if len(delivery_id) > MAX_DELIVERY_ID_LENGTH:
        raise WebhookRefusedError(
            400, f"{DELIVERY_ID_HEADER} is longer than {MAX_DELIVERY_ID_LENGTH}"
        )
    if not timestamp.isdigit():
        raise WebhookRefusedError(
            400, f"{TIMESTAMP_HEADER} must be Unix seconds, got {timestamp!r}"
        )
    if not _signature_matches(secret, signature, delivery_id, timestamp, body):
        raise WebhookRefusedError(
            401, "bad signature: the HMAC does not match the watcher's secret"
        )
    age = now - int(timestamp)
    if abs(age) > REPLAY_WINDOW_SECONDS:
        when = "old" if age > 0 else "in the future"
        raise WebhookRefusedError(
            401,
            f"stale delivery: its timestamp is {abs(age):.0f}s {when}, more than the "
            f"{REPLAY_WINDOW_SECONDS:.0f}s allowed (a replay, or a clock out of sync)",
        )
    if not guard.admit(delivery_id, now):
        raise WebhookRefusedError(409, f"replayed delivery: {delivery_id} was already accepted")
    return Delivery(delivery_id, int(timestamp))


def _signature_matches(
    secret: str, signature: str, delivery_id: str, timestamp: str, body: bytes
) -> bool:
    version, _, encoded = signature.partition(",")
    if version != SIGNATURE_VERSION or not encoded:
        return False
    try:
        given = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = base64.b64decode(sign(secret, delivery_id, timestamp, body).partition(",")[2])
    return hmac.compare_digest(given, expected)
