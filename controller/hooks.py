"""The plan's webhooks: a JSON POST at fixed points of a rollout, judged by its answer.

The loop decides when to ask (a `CallHook` action) and what the answer means;
this module only makes the call and says how it went. A hook passes when it
answers 2xx within its timeout. Anything else fails, with a reason that names
the hook by its origin only (a webhook's path is often its secret): a non-2xx
status (with the start of the body), a timeout, a refused connection.

The request body, the same for every hook (`HOOK_PAYLOAD_VERSION` 1):

    {
      "version": 1,
      "hook": "pre_stage",              pre_rollout | pre_stage | post_stage |
                                        confirm_promotion | on_rollback
      "rollout_id": "fraud-20261125-101500-3fa2",
      "plan": "fraud-incremental",
      "model": "fraud",
      "baseline": "3",                  pinned versions
      "candidate": "4",
      "phase": "starting",              the rollout's phase when asked
      "stage": {"number": 2, "name": "20%", "weight": 0.2, "mirror": 0.0},
                                        the stage asked about (null for
                                        pre_rollout, confirm_promotion, on_rollback)
      "stages": 4,                      how many stages the plan has
      "reason": "stage 1/4 (5%) passed after 30m: …",   the latest decision
      "sent_at": 1764066900.25          seconds since the epoch
    }

Headers: `Content-Type: application/json`, `User-Agent: gray`, `X-Gray-Hook`
(the hook's name), `X-Gray-Rollout` (the rollout id), and the plan's `headers`
for the hook (for a token: `Authorization: Bearer ${HOOK_TOKEN}`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from gray.controller.plan.models import HookSpec, HooksSpec, Plan
from gray.controller.plan.units import format_duration
from gray.controller.redact import redact, webhook_label
from gray.controller.state import RolloutState

HOOK_PAYLOAD_VERSION = 1
BODY_SHOWN_CHARACTERS = 200  # of a failing hook's answer, in the reason
_BODY_READ_BYTES = 4096


@dataclass(frozen=True)
class HookAnswer:
    """How one call went: `ok` for a 2xx in time; `reason` says so in one sentence."""

    hook: str
    ok: bool
    reason: str
    status: int | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "ok": self.ok,
            "status": self.status,
            "milliseconds": round(self.seconds * 1000, 1),
        }


def payload(plan: Plan, state: RolloutState, hook: str, stage: int | None) -> dict[str, Any]:
    """The documented JSON body for `hook`, asked about `stage` (an index) or the rollout."""
    stage_info = None
    if stage is not None:
        spec = plan.stages[stage]
        stage_info = {
            "number": stage + 1,
            "name": spec.name,
            "weight": spec.weight,
            "mirror": spec.mirror,
        }
    return {
        "version": HOOK_PAYLOAD_VERSION,
        "hook": hook,
        "rollout_id": state.rollout_id,
        "plan": plan.name,
        "model": state.model,
        "baseline": state.baseline,
        "candidate": state.candidate,
        "phase": state.phase.value,
        "stage": stage_info,
        "stages": len(plan.stages),
        "reason": redact(state.reason),
        "sent_at": time.time(),
    }


class HookCaller:
    """Calls the plan's hooks; `transport` lets tests route calls in-process."""

    def __init__(self, hooks: HooksSpec, *, transport: httpx.BaseTransport | None = None) -> None:
        self.hooks = hooks
        self._transport = transport

    def call(self, hook: str, body: dict[str, Any]) -> HookAnswer:
        spec = self.hooks.get(hook)
        if spec is None:
            raise ValueError(f"the plan has no {hook} hook")
        started = time.monotonic()
        try:
            status, text = self._post(spec, hook, body, started)
        except _OutOfTime:
            return self._answer(hook, spec, started, None, "timed out")
        except httpx.TimeoutException:
            return self._answer(hook, spec, started, None, "timed out")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return self._answer(hook, spec, started, None, f"failed: {exc or type(exc).__name__}")
        shown = "" if 200 <= status < 300 else " ".join(text.split())[:BODY_SHOWN_CHARACTERS]
        return self._answer(hook, spec, started, status, f"answered {status}", shown)

    def _post(
        self, spec: HookSpec, hook: str, body: dict[str, Any], started: float
    ) -> tuple[int, str]:
        """POST and read the start of the answer, within the hook's timeout overall."""
        headers = {
            "User-Agent": "gray",
            "X-Gray-Hook": hook,
            "X-Gray-Rollout": str(body.get("rollout_id", "")),
            **spec.headers,
        }
        with (
            httpx.Client(timeout=spec.timeout, transport=self._transport) as client,
            client.stream("POST", spec.url, json=body, headers=headers) as response,
        ):
            received = bytearray()
            for chunk in response.iter_bytes():
                # A server that trickles its answer must not hold the rollout past the timeout.
                if time.monotonic() - started > spec.timeout:
                    raise _OutOfTime
                received.extend(chunk)
                if len(received) >= _BODY_READ_BYTES:
                    break
            return response.status_code, received.decode("utf-8", errors="replace")

    @staticmethod
    def _answer(
        hook: str,
        spec: HookSpec,
        started: float,
        status: int | None,
        outcome: str,
        detail: str = "",
    ) -> HookAnswer:
        seconds = time.monotonic() - started
        ok = status is not None and 200 <= status < 300
        if outcome == "timed out":
            outcome = f"timed out after {format_duration(spec.timeout)}"
        took = f" in {format_duration(max(seconds, 0.001))}" if status is not None else ""
        said = f": {detail}" if detail else ""
        reason = redact(f"{hook} hook {webhook_label(spec.url)} {outcome}{took}{said}")
        return HookAnswer(hook, ok, reason, status, seconds)


class _OutOfTime(Exception):
    """The hook's answer did not arrive in full within its timeout."""
