"""POST /invocations, answered in plain ASGI.

For a model that predicts in well under a millisecond, FastAPI's layers between the
server and the handler (exception wrappers, routing, dependency solving, the Response
class and its senders) cost about a third of the gateway's time per request. This
middleware sits outermost and answers /invocations itself, with the very same reading
(`Gateway.predict`), body limits (`BodyLimit`), error answers and after-work as the
route it replaces, and adds the path to the app's OpenAPI document (`document`).
Every other path goes on to the app.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from gray.gateway.auth import Tokens
from gray.gateway.inputs import dumps
from gray.gateway.limits import (
    BodyLimit,
    BodyTooLarge,
    BodyTooSlow,
    send_json,
    too_large_payload,
    too_slow_payload,
)
from gray.gateway.responses import internal_error_payload
from gray.gateway.service import OVERRIDE_HEADER, Gateway, PredictionAnswer, PredictionRequest

PATH = "/invocations"
_CLOSE = (b"connection", b"close")


class Disconnected(Exception):
    """The client went away before its body arrived: there is no one to answer."""


class InvocationsFastPath:
    def __init__(
        self, app: ASGIApp, gateway: Gateway, tokens: Tokens, limit: int, pause: float
    ) -> None:
        self.app = app
        self.gateway = gateway
        self.tokens = tokens
        self.limited = BodyLimit(self._answer, limit, pause)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "POST":
            await self.limited(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            body = await _read_body(receive)
        except BodyTooLarge as error:
            await send_json(send, 413, too_large_payload(error.limit), _CLOSE)
            return
        except BodyTooSlow as error:
            await send_json(send, 408, too_slow_payload(error.pause), _CLOSE)
            return
        except Disconnected:
            return
        headers = Headers(scope=scope)
        client = scope.get("client")
        request = PredictionRequest(
            body=body,
            content_type=headers.get("content-type"),
            headers=headers,
            client_host=client[0] if client else None,
            # Only a forced version needs the token; most requests skip the comparison.
            caller_is_admin=OVERRIDE_HEADER in headers and self.tokens.is_admin(headers),
            started=started,
        )
        try:
            answer = await self.gateway.predict(request)
        except Exception as error:  # answered like the app's handler of the unexpected
            await send_json(send, 500, internal_error_payload(error))
            return
        await send(_start(answer, content := dumps(answer.payload)))
        await send({"type": "http.response.body", "body": content})
        if answer.has_work_after:
            # After the answer went out, as the route's background task did.
            self.gateway.after_answer(answer)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _start(answer: PredictionAnswer, content: bytes) -> dict[str, object]:
    headers = [
        (b"content-length", str(len(content)).encode()),
        (b"content-type", b"application/json"),
        (b"x-request-id", answer.request_id.encode()),
    ]
    if answer.version is not None:
        headers.append((b"x-model-version", answer.version.encode()))
    return {"type": "http.response.start", "status": answer.status, "headers": headers}


# MLflow's scoring request as a schema: one of the body shapes `mlflow models serve` reads.
_JSON_BODY: dict[str, Any] = {
    "type": "object",
    "description": "One of MLflow's input shapes, with optional `params`.",
    "properties": {
        "dataframe_split": {
            "type": "object",
            "properties": {
                "columns": {"type": "array", "items": {}},
                "data": {"type": "array", "items": {"type": "array", "items": {}}},
                "index": {"type": "array", "items": {}},
            },
            "required": ["data"],
        },
        "dataframe_records": {"type": "array", "items": {"type": "object"}},
        "instances": {"type": "array", "items": {}},
        "inputs": {},
        "params": {"type": "object"},
    },
}
_ANSWER = {"content": {"application/json": {"schema": {"type": "object"}}}}
OPERATION: dict[str, Any] = {
    "summary": "Score rows with the version the route picks (MLflow's scoring protocol)",
    "operationId": "invocations",
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _JSON_BODY},
            "text/csv": {"schema": {"type": "string"}},
        },
    },
    "responses": {
        "200": {"description": "`predictions`", **_ANSWER},
        "400": {"description": "an unusable request, in MLflow's error shape", **_ANSWER},
        "413": {"description": "a body over --max-body", **_ANSWER},
        "500": {"description": "the version failed on this request", **_ANSWER},
        "503": {"description": "the version is not loaded yet", **_ANSWER},
    },
}


def document(app: FastAPI) -> None:
    """Add POST /invocations to the app's OpenAPI document: no route declares it."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema["paths"] = {PATH: {"post": OPERATION}, **schema["paths"]}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
