"""The plan's hooks end to end: the real CLI, a real gateway and registry, a real HTTP receiver."""

from __future__ import annotations

import json

import pytest

from tests.receiver import Receiver

from .conftest import Stack

pytestmark = pytest.mark.slow

ONE_STAGE = "  - {weight: 50%, dwell: 4s}"
HOOKS = (
    "hooks:\n"
    '  pre_rollout: {{url: "{url}/pre_rollout", timeout: 2s}}\n'
    '  pre_stage: {{url: "{url}/pre_stage", timeout: 2s}}\n'
    '  post_stage: {{url: "{url}/post_stage", timeout: 2s}}\n'
    '  confirm_promotion: {{url: "{url}/confirm_promotion", timeout: 2s,'
    ' headers: {{Authorization: "Bearer ${{HOOK_TOKEN}}"}}}}\n'
)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_hooks_gate_a_real_rollout(
    stack: Stack, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "hook-secret-token")
    path = stack.plan("hooks", "challenger", ONE_STAGE)
    # No extensions: the stage passes at the end of its dwell unless a gate fails.
    text = path.read_text().replace("max_extensions: 2", "max_extensions: 0")
    path.write_text(text + HOOKS.format(url=receiver.url))
    before = stack.route()

    # A failing smoke test stops the rollout before any traffic: exit 2, endpoint untouched.
    receiver.reply("/pre_rollout", 503, body="smoke: /invocations answered 500")
    refused = stack.gray("rollout", "start", str(path), "--output", "json")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert receiver.paths() == ["/pre_rollout"]
    after = stack.route()  # the preflight loaded the candidate, without traffic
    assert (after["route"], after["lease"]) == (before["route"], before["lease"])
    exit_line = json_lines(refused.stdout)[-1]
    assert "answered 503" in exit_line["reason"] and "nothing changed" in exit_line["reason"]

    # The smoke test passes; confirm_promotion refuses once, then agrees at the next look.
    receiver.received.clear()
    receiver.reply("/pre_rollout", 200)
    receiver.reply("/confirm_promotion", 409, 200)
    result = stack.gray("rollout", "start", str(path), "--output", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert receiver.paths() == [
        "/pre_rollout",
        "/pre_stage",
        "/post_stage",
        "/confirm_promotion",
        "/confirm_promotion",
    ]
    rollout_id = json_lines(result.stdout)[-1]["rollout_id"]
    assert rollout_id != exit_line["rollout_id"]
    first = receiver.received[0].body
    assert {r.body["rollout_id"] for r in receiver.received} == {rollout_id}
    assert first["candidate"] == stack.versions["good"] and first["model"] == "fraud"
    assert receiver.bodies("/pre_stage")[0]["stage"] == {
        "number": 1,
        "name": "50%",
        "weight": 0.5,
        "mirror": 0.0,
    }
    assert receiver.bodies("/post_stage")[0]["reason"].startswith("stage 1/1 (50%)")
    confirm = [r for r in receiver.received if r.path == "/confirm_promotion"]
    assert confirm[0].headers["Authorization"] == "Bearer hook-secret-token"
    events = [e["event"] for e in json_lines(result.stdout)]
    assert events.index("hook_passed") < events.index("stage_started")
    assert "waiting_approval" in events and "promoted" in events
    assert stack.route()["route"]["baseline"] == stack.versions["good"]
    # The hook's token never reached the controller's output.
    assert "hook-secret-token" not in result.stdout + result.stderr
