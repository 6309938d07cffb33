"""How the gateway's HTTP handlers answer: JSON bodies, MLflow's error shape where
MLflow's protocol is served, and the version numbers paths may carry."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi.responses import Response

from gray.gateway.inputs import json_default

JSON = "application/json"
# Registry versions are numbers; anything else in a path is refused before it is logged.
VERSION_PATTERN = re.compile(r"^[0-9]{1,18}$")


def dumps_json(payload: Any) -> bytes:
    return json.dumps(payload, default=json_default).encode("utf-8")


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(dumps_json(payload), status_code=status, media_type=JSON, headers=headers)


def internal_error_payload(error: Exception) -> dict[str, str]:
    """What a client gets for an exception no handler expected: a JSON 500, never a trace."""
    return {"error": "internal", "message": f"{type(error).__name__}: {error}"}
