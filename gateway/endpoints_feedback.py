"""POST /feedback: late labels for earlier answers, one or many at a time."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response

from gray.gateway.auth import Scope, needs
from gray.gateway.bodies import FeedbackBody
from gray.gateway.feedback import AlreadyLabelled, LabelShapeError, UnknownRequest
from gray.gateway.responses import json_response
from gray.gateway.service import Gateway


def add_feedback_route(app: FastAPI, gateway: Gateway) -> None:
    @app.post("/feedback", **needs(Scope.FEEDBACK))
    async def feedback(body: FeedbackBody) -> Response:
        if body.request_id is not None:
            try:
                labelled, correct = gateway.feedback.label(body.request_id, body.label)
            except UnknownRequest:
                return json_response(
                    {"error": "unknown_request", "message": f"no answer {body.request_id} here"},
                    404,
                )
            except AlreadyLabelled:
                return json_response(
                    {"error": "already_labelled", "message": f"{body.request_id} has a label"},
                    409,
                )
            except LabelShapeError as error:
                return json_response({"error": "label_shape", "message": str(error)}, 422)
            return json_response({"labelled": labelled, "correct": correct})
        accepted, unknown, duplicate, misshapen = 0, [], [], []
        for item in body.labels or []:
            try:
                gateway.feedback.label(item.request_id, item.label)
                accepted += 1
            except UnknownRequest:
                unknown.append(item.request_id)
            except AlreadyLabelled:
                duplicate.append(item.request_id)
            except LabelShapeError:
                misshapen.append(item.request_id)
        return json_response(
            {
                "accepted": accepted,
                "unknown": unknown,
                "duplicate": duplicate,
                "misshapen": misshapen,
            }
        )
