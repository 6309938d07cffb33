"""How the gateway answers what its handlers raise: refused tokens, bodies too large or
too slow, unreadable parameters, and anything unexpected (a JSON 500, never a trace)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from gray.gateway.auth import Unauthorized, unauthorized_payload
from gray.gateway.limits import (
    BodyTooLarge,
    BodyTooSlow,
    too_large_payload,
    too_slow_payload,
)
from gray.gateway.responses import internal_error_payload, json_response


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Unauthorized)
    async def _unauthorized(_: Request, refused: Unauthorized) -> Response:
        return json_response(
            unauthorized_payload(refused.scope), 401, {"WWW-Authenticate": "Bearer"}
        )

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_: Request, error: BodyTooLarge) -> Response:
        return json_response(too_large_payload(error.limit), 413, {"Connection": "close"})

    @app.exception_handler(BodyTooSlow)
    async def _too_slow(_: Request, error: BodyTooSlow) -> Response:
        return json_response(too_slow_payload(error.pause), 408, {"Connection": "close"})

    @app.exception_handler(RequestValidationError)
    async def _unprocessable(_: Request, error: RequestValidationError) -> Response:
        return json_response(
            {
                "error": "bad_request",
                "message": "; ".join(_describe_problem(p) for p in error.errors()),
                "detail": json.loads(json.dumps(error.errors(), default=str)),
            },
            422,
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> Response:
        return JSONResponse(internal_error_payload(error), 500)


def _describe_problem(problem: Any) -> str:
    where = ".".join(str(part) for part in problem.get("loc", ()) if part != "body")
    return f"{where or 'body'}: {problem.get('msg', 'invalid')}"
