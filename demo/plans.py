"""The demo's rollout plan: the same language as any plan, with seconds instead of minutes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoTimings:
    interval: str
    dwell: str
    last_dwell: str
    min_dwell: str  # a stage whose gates all pass ends here instead of at `dwell`


# `quick` is what the test suite runs; `normal` gives a person time to watch.
TIMINGS = {
    "normal": DemoTimings(interval="1s", dwell="15s", last_dwell="8s", min_dwell="5s"),
    "quick": DemoTimings(interval="1s", dwell="8s", last_dwell="4s", min_dwell="3s"),
}

PLAN_TEMPLATE = """\
# gray demo plan: {title}
# Run it again by hand (with the demo gateway up):
#   GRAY_GATEWAY_TOKEN=... gray rollout start {file}
name: demo-{scenario}
model:
  name: {model}
  baseline: "@champion"
  candidate: "@{candidate_alias}"
  preprocessor: {{artifact: preprocessor}}
registry: {{uri: "{registry_uri}"}}
router: {{type: gateway, url: "{gateway_url}", token: "${{GRAY_GATEWAY_TOKEN}}"}}
metrics: {{type: gateway}}
interval: {interval}
# A stage ends as soon as every gate passes and min_dwell is over; dwell is the longest.
min_dwell: {min_dwell}
gates:
  # Model failures (5xx): at most +50 % relative, or +2 points absolute.
  - {{metric: error_rate, max_increase: 50%, max_increase_abs: 2%, min_samples: 100}}
  # Requests slower than 50 ms: at most +50 %, or +5 points.
  - {{metric: latency, slo: 50ms, max_increase: 50%, max_increase_abs: 5%, min_samples: 100}}
  # Accuracy from labels posted to /feedback a second after each answer.
  - {{metric: accuracy, max_decrease: 10%, min_samples: 100}}
stages:
  - {{weight: 20%, dwell: {dwell}}}
  - {{weight: 50%, dwell: {dwell}}}
  - {{weight: 100%, dwell: {last_dwell}}}
policies:
  inconclusive: {{extend: {dwell}, max_extensions: 1, then: pass}}
  no_data: {{hold: 10s}}
promote: {{alias: champion, keep_previous_as: previous-champion}}
"""


def demo_plan_text(
    *,
    scenario: str,
    title: str,
    file: str,
    model: str,
    candidate_alias: str,
    registry_uri: str,
    gateway_url: str,
    timings: str = "normal",
) -> str:
    chosen = TIMINGS[timings]
    return PLAN_TEMPLATE.format(
        scenario=scenario,
        title=title,
        file=file,
        model=model,
        candidate_alias=candidate_alias,
        registry_uri=registry_uri,
        gateway_url=gateway_url,
        interval=chosen.interval,
        dwell=chosen.dwell,
        last_dwell=chosen.last_dwell,
        min_dwell=chosen.min_dwell,
    )
