"""Secrets out of every message, log line and journal entry.

gray prints and journals URLs and error texts that may carry credentials: a
router or registry URL with `user:password@`, a query string with `?token=`,
an `Authorization: Bearer …` echoed by a library, a webhook whose path is its
secret (Slack's `hooks.slack.com/services/…`). `redact` masks all of these in
any text; it is applied where messages are made (every `GrayError`, plan
problems, webhook failures, journal entries, warnings), so no single call
site has to remember it.

Values known to be secret (the plan's tokens) are registered once with
`register_secret` and masked wherever they appear, whatever the text around
them. Nothing here imports the rest of gray: errors.py uses it.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

# Query parameters whose values are credentials (matched case-insensitively, as a
# whole name or as the end of one: `x-amz-signature`, `client_secret`).
_SECRET_PARAMS = (
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "apikey",
    "key",
    "secret",
    "client_secret",
    "password",
    "passwd",
    "pwd",
    "auth",
    "sig",
    "signature",
    "credential",
    "code",
)
_QUERY_SECRET = re.compile(
    r"(?P<name>[?&;](?:[\w.\-]*[_\-.])?(?:"
    + "|".join(_SECRET_PARAMS)
    + r"))=(?P<value>[^&;#\s'\"]+)",
    re.IGNORECASE,
)
# scheme://userinfo@ : the userinfo is `user:password` or a bare token.
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^/\s@'\"<>]+)@")
# A credential after its scheme word; 8 characters at least, so that prose ("Basic auth")
# stays as it is.
_AUTH_HEADER = re.compile(r"\b(?P<kind>Bearer|Basic|Token)\s+(?P<value>[A-Za-z0-9._~+/=\-]{8,})")
# Webhooks whose path is the credential.
_SECRET_PATH_HOSTS = re.compile(
    r"(?P<origin>https?://(?:hooks\.slack\.com|discord(?:app)?\.com|[\w.\-]*webhook[\w.\-]*"
    r"|outlook\.office(?:365)?\.com|[\w.\-]*\.webhook\.office\.com|chat\.googleapis\.com))"
    r"(?P<path>/[^\s'\"<>]*)",
    re.IGNORECASE,
)

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words


def register_secret(value: str | None) -> None:
    """Mask `value` wherever it appears from now on (tokens read from the plan or flags)."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """`text` with credentials masked: registered secrets, URL userinfo, secret query
    values, bearer/basic tokens and webhook paths."""
    if not text:
        return text
    with _secrets_lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _SECRET_PATH_HOSTS.sub(lambda m: f"{m['origin']}/{MASK}", text)
    text = _USERINFO.sub(_mask_userinfo, text)
    text = _QUERY_SECRET.sub(lambda m: f"{m['name']}={MASK}", text)
    return _AUTH_HEADER.sub(lambda m: f"{m['kind']} {MASK}", text)


def redact_data(value: Any) -> Any:
    """`redact` applied to every string inside dicts, lists and tuples (for journal entries)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_data(item) for item in value)
    return value


def webhook_label(url: str) -> str:
    """How to name a webhook in a message: its origin only, since its path and query
    are often the credential (`https://hooks.slack.com/services/T…/B…/x…`)."""
    try:
        parts = urlsplit(url)
        hostname, port = parts.hostname, parts.port  # `port` parses lazily and may raise
    except ValueError:
        return MASK
    if not parts.scheme or not hostname:
        return MASK
    if ":" in hostname:  # IPv6 literal
        hostname = f"[{hostname}]"
    host = hostname if port is None else f"{hostname}:{port}"
    tail = "/…" if parts.path not in ("", "/") or parts.query else ""
    return urlunsplit((parts.scheme, host, "", "", "")) + tail


def install_log_redaction() -> None:
    """Redact every log record this process makes (gray's, MLflow's, httpx's), once.

    The record factory runs only for records a logger lets through, so the
    cost is paid for lines that are written, not for every logging call.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "gray_redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return record

    factory.gray_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def _mask_userinfo(match: re.Match[str]) -> str:
    user, colon, _ = match["userinfo"].partition(":")
    shown = f"{user}:{MASK}" if colon else MASK  # a lone userinfo is usually a token
    return f"{match['scheme']}{shown}@"
